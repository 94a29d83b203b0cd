import re

from django.conf import settings
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("interview/<uuid:session_id>/", views.interview_page, name="interview-page"),
]

# Static files are served by the same process unless STATIC_URL points elsewhere (a CDN).
_static_prefix = settings.STATIC_URL.lstrip("/")
if _static_prefix and "://" not in settings.STATIC_URL and not settings.STATIC_URL.startswith("//"):
    urlpatterns.append(
        re_path(rf"^{re.escape(_static_prefix)}(?P<path>.+)$", views.static_file, name="static-file")
    )
