from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.operation_list, name="list"),
    path("export.csv", views.operation_export, name="export"),
]
