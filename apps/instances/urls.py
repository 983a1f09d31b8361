from django.urls import path

from . import history_views, log_views, views

app_name = "instances"
urlpatterns = [
    path("", views.instance_list, name="list"),
    path("timeline/", history_views.instance_timeline, name="timeline"),
    path("export.csv", views.instance_export, name="export"),
    path("batch/", views.instance_batch, name="batch"),
    path("<int:instance_id>/", views.instance_detail, name="detail"),
    path("<int:instance_id>/live", views.instance_live, name="live"),
    path("<int:instance_id>/log", views.instance_log, name="log"),
    path("<int:instance_id>/log/view", log_views.instance_log_view, name="log_view"),
    path("<int:instance_id>/log/download", log_views.instance_log_download, name="log_download"),
    path("<int:instance_id>/diagnosis", views.instance_diagnosis, name="diagnosis"),
    path("<int:instance_id>/neighbours", views.instance_neighbours, name="neighbours"),
    path("<int:instance_id>/operations", views.instance_operations, name="operations"),
    path("<int:instance_id>/operate", views.instance_operate, name="operate"),
    path("<int:instance_id>/graph", views.instance_graph_data, name="graph"),
    path("<int:instance_id>/dag/", views.instance_dag, name="dag"),
]
