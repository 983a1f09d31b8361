from django.urls import path

from . import views

app_name = "backfills"
urlpatterns = [
    path("", views.backfill_list, name="list"),
    path("new/", views.backfill_new, name="new"),
    path("new/downstream", views.backfill_downstream, name="downstream"),
    path("new/plan.json", views.backfill_plan_dag, name="plan_dag"),
    path("<int:backfill_id>/", views.backfill_detail, name="detail"),
    path("<int:backfill_id>/stop", views.backfill_action, {"action": "stop"}, name="stop"),
    path(
        "<int:backfill_id>/rerun-failed",
        views.backfill_action,
        {"action": "rerun_failed"},
        name="rerun_failed",
    ),
]
