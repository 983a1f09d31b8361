from django.urls import path

from . import views

# Under /projects/ (a project's pages); /resources/ is the resource usage dashboard.
app_name = "project_resources"
urlpatterns = [
    path("<slug:code>/resources/", views.resource_list, name="list"),
    path("<slug:code>/resources/<str:name>/", views.resource_detail, name="detail"),
    path("<slug:code>/resources/<str:name>/download", views.resource_download, name="download"),
    path("<slug:code>/resources/<str:name>/delete", views.resource_delete, name="delete"),
]
