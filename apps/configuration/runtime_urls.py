from django.urls import path

from . import runtime_views

app_name = "runtime"
urlpatterns = [
    path("", runtime_views.runtime_global, name="global"),
    path("<slug:code>/", runtime_views.runtime_project, name="project"),
]
