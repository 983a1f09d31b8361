from django.urls import path

from . import capacity_views as views

app_name = "configuration"
urlpatterns = [
    path("resource-groups/", views.group_list, name="resource_groups"),
    path("resource-groups/new/", views.group_new, name="resource_group_new"),
    path("resource-groups/<slug:name>/", views.group_detail, name="resource_group"),
    path("resource-groups/<slug:name>/edit/", views.group_edit, name="resource_group_edit"),
    path("resource-groups/<slug:name>/delete/", views.group_delete, name="resource_group_delete"),
    path("throttle-rules/", views.rule_list, name="throttle_rules"),
    path("throttle-rules/new/", views.rule_new, name="throttle_rule_new"),
    path("throttle-rules/<int:rule_id>/", views.rule_edit, name="throttle_rule_edit"),
    path("throttle-rules/<int:rule_id>/toggle/", views.rule_toggle, name="throttle_rule_toggle"),
    path("throttle-rules/<int:rule_id>/delete/", views.rule_delete, name="throttle_rule_delete"),
]
