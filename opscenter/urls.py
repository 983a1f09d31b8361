from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.instances.search_views import search, search_nodes

from .api import api
from .views import FaviconView

handler500 = "opscenter.views.server_error"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="overview:index", permanent=False)),
    path("favicon.ico", FaviconView.as_view()),
    path("admin/", admin.site.urls),
    path("search/", search, name="search"),
    path("search/nodes", search_nodes, name="search_nodes"),
    path("api/", api.urls),
    path("", include("apps.accounts.urls")),
    path("instances/", include("apps.instances.urls")),
    path("overview/", include("apps.monitoring.urls")),
    path("nodes/", include("apps.nodes.urls")),
    path("backfills/", include("apps.backfills.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("alerts/", include("apps.monitoring.alert_urls")),
    path("baselines/", include("apps.baselines.urls")),
    path("configuration/runtime/", include("apps.configuration.runtime_urls")),
    path("configuration/", include("apps.configuration.capacity_urls")),
    path("resources/", include("apps.monitoring.resources_urls")),
    path("quality/", include("apps.quality.urls")),
    path("health/", include("apps.health.urls")),
    path("audit/", include("apps.audit.urls")),
    path("backups/", include("apps.backups.urls")),
    path("projects/", include("apps.projects.urls")),
    path("projects/", include("apps.resources.urls")),
]
