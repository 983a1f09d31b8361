from django.urls import path

from . import views

app_name = "quality"
urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("new/", views.rule_new, name="rule_new"),
    path("<int:rule_id>/", views.rule_detail, name="rule_detail"),
    path("<int:rule_id>/edit/", views.rule_edit, name="rule_edit"),
    path("<int:rule_id>/delete/", views.rule_delete, name="rule_delete"),
]
