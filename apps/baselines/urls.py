from django.urls import path

from . import views

app_name = "baselines"
urlpatterns = [
    path("", views.baseline_list, name="list"),
    path("<int:baseline_id>/", views.baseline_detail, name="detail"),
]
