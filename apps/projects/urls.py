from django.urls import path

from . import views

# Collections take POST to create (no "new/" path: "new" may well be a project code or a
# datasource name).
app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("<slug:code>/", views.project_detail, name="detail"),
    path("<slug:code>/delete/", views.project_delete, name="delete"),
    path("<slug:code>/members/", views.member_list, name="members"),
    path("<slug:code>/members/<str:username>/role", views.member_role, name="member_role"),
    path("<slug:code>/members/<str:username>/remove", views.member_remove, name="member_remove"),
    path("<slug:code>/datasources/", views.datasource_list, name="datasources"),
    path("<slug:code>/datasources/<str:name>/", views.datasource_detail, name="datasource"),
    path("<slug:code>/datasources/<str:name>/test", views.datasource_test, name="datasource_test"),
    path(
        "<slug:code>/datasources/<str:name>/delete",
        views.datasource_delete,
        name="datasource_delete",
    ),
    path("<slug:code>/variables/", views.variable_list, name="variables"),
    path("<slug:code>/variables/<str:name>/", views.variable_detail, name="variable"),
    path("<slug:code>/variables/<str:name>/delete", views.variable_delete, name="variable_delete"),
]
