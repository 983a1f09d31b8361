from django.urls import path

from apps.realtime.views import node_realtime_action, node_realtime_panel

from . import group_views, views

app_name = "nodes"
urlpatterns = [
    path("", views.node_list, name="list"),
    path("batch", views.nodes_batch, name="batch"),
    path("one-time/", views.node_one_time_list, name="one_time"),
    path("groups/", group_views.node_group_list, name="groups"),
    path("groups/<str:code>/<str:group>/", group_views.node_group_detail, name="group"),
    path(
        "groups/<str:code>/<str:group>/pause",
        group_views.node_group_action,
        {"action": "pause"},
        name="group_pause",
    ),
    path(
        "groups/<str:code>/<str:group>/resume",
        group_views.node_group_action,
        {"action": "resume"},
        name="group_resume",
    ),
    path("<int:node_id>/", views.node_detail, name="detail"),
    path("<int:node_id>/history/", views.node_pipeline_history, name="history"),
    path("<int:node_id>/dag.json", views.node_dag_json, name="dag"),
    path("<int:node_id>/run", views.node_run, name="run"),
    path("<int:node_id>/pause", views.node_action, {"action": "pause"}, name="pause"),
    path("<int:node_id>/resume", views.node_action, {"action": "resume"}, name="resume"),
    path("<int:node_id>/offline", views.node_action, {"action": "offline"}, name="offline"),
    path("<int:node_id>/realtime", node_realtime_panel, name="realtime_panel"),
    path(
        "<int:node_id>/realtime/<str:action>",
        node_realtime_action,
        name="realtime",
    ),
]
