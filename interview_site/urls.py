from django.contrib import admin
from django.urls import include, path

from realtime.views import ops_stats

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ops/stats", ops_stats, name="ops-stats"),
    path("", include("interviews.urls")),
]
