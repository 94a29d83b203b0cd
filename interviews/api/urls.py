"""/api/v1/...: the versioned paths (the version reaches each view as `version`)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from . import views

urlpatterns = [
    path("<str:version>/sessions/", views.SessionListView.as_view(), name="api-sessions"),
    path("<str:version>/sessions/<uuid:session_id>/", views.SessionDetailView.as_view(), name="api-session"),
    path("<str:version>/sessions/<uuid:session_id>/transcript/", views.SessionTranscriptView.as_view(),
         name="api-session-transcript"),
    path("<str:version>/sessions/<uuid:session_id>/result/", views.SessionResultView.as_view(),
         name="api-session-result"),
    path("<str:version>/sessions/<uuid:session_id>/end/", views.SessionEndView.as_view(), name="api-session-end"),
    # The schema is public: it describes the API, never data.
    path("<str:version>/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny],
                                                             authentication_classes=[]), name="api-schema"),
]
