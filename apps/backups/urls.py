from django.urls import path

from . import views

app_name = "backups"

urlpatterns = [
    path("", views.backup_list, name="list"),
    path("now", views.backup_now, name="now"),
    path("settings/", views.backup_settings, name="settings"),
    path("upload/", views.backup_upload, name="upload"),
    path("<int:backup_id>/download", views.backup_file, name="download"),
    path("<int:backup_id>/verify", views.backup_verify, name="verify"),
    path("<int:backup_id>/delete", views.backup_delete, name="delete"),
    path("<int:backup_id>/restore/", views.backup_restore, name="restore"),
]
