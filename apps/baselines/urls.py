from django.urls import path

from . import views

app_name = "baselines"
urlpatterns = [
    path("", views.baseline_list, name="list"),
    path("new/", views.baseline_new, name="new"),
    path("<int:baseline_id>/", views.baseline_detail, name="detail"),
    path("<int:baseline_id>/edit/", views.baseline_edit, name="edit"),
    path("<int:baseline_id>/delete/", views.baseline_delete, name="delete"),
]
