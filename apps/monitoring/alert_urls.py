from django.urls import path

from . import alert_views, rule_views

app_name = "alerts"
urlpatterns = [
    path("", alert_views.alert_list, name="list"),
    path("batch/", alert_views.alert_batch, name="batch"),
    path("badge/", alert_views.firing_badge, name="firing_badge"),
    path("<int:alert_id>/", alert_views.alert_detail, name="detail"),
    path("<int:alert_id>/ack/", alert_views.alert_operate, {"action": "ack"}, name="ack"),
    path(
        "<int:alert_id>/resolve/", alert_views.alert_operate, {"action": "resolve"}, name="resolve"
    ),
    path("rules/", rule_views.rule_list, name="rules"),
    path("rules/new/", rule_views.rule_new, name="rule_new"),
    path("rules/<int:rule_id>/", rule_views.rule_edit, name="rule_edit"),
    path("rules/<int:rule_id>/toggle/", rule_views.rule_toggle, name="rule_toggle"),
    path("rules/<int:rule_id>/delete/", rule_views.rule_delete, name="rule_delete"),
    path("on-call/", rule_views.on_call_list, name="on_call"),
    path("on-call/new/", rule_views.on_call_new, name="on_call_new"),
    path("on-call/<int:schedule_id>/", rule_views.on_call_edit, name="on_call_edit"),
    path("on-call/<int:schedule_id>/delete/", rule_views.on_call_delete, name="on_call_delete"),
]
