from django.contrib import admin
from django.urls import include, path

from realtime.health import healthz, readyz
from realtime.views import ops_stats

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ops/stats", ops_stats, name="ops-stats"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("interviews.urls")),
]
