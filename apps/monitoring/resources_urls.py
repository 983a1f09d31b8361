from django.urls import path

from . import resources_views

app_name = "resources"
urlpatterns = [
    path("", resources_views.resources_dashboard, name="index"),
    path("nodes/<int:node_id>/apply/", resources_views.resources_apply, name="apply"),
]
