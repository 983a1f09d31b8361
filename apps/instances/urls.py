from django.urls import path

from . import views

app_name = "instances"
urlpatterns = [
    path("", views.instance_list, name="list"),
    path("<int:instance_id>/", views.instance_detail, name="detail"),
    path("<int:instance_id>/live", views.instance_live, name="live"),
    path("<int:instance_id>/log", views.instance_log, name="log"),
]
