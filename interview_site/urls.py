from django.contrib import admin
from django.urls import include, path

from realtime.health import healthz, readyz
from realtime.question_audio import question_audio
from realtime.token_refresh import token as demo_token
from realtime.views import ops_stats, prometheus_metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("interviews.api.urls")),  # the REST API, versioned: /api/v1/...
    path("api/ops/stats", ops_stats, name="ops-stats"),
    path("metrics", prometheus_metrics, name="metrics"),
    path("healthz", healthz, name="healthz"),
    # The demo auth server's token renewal (GoTrue's wire format); 404 when SUPABASE_URL is set.
    path("auth/v1/token", demo_token, name="demo-token"),
    path("readyz", readyz, name="readyz"),
    path("api/sessions/<uuid:session_id>/question-audio/<str:token>.wav", question_audio, name="question-audio"),
    path("", include("interviews.urls")),
]
