"""The candidate's interview page, and the static files it needs.

The page itself is anonymous and touches no database: the candidate's access token
travels in the URL fragment (never sent to the server) and is checked by the
WebSocket when the page connects. So the page reveals nothing about a session id.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import views as staticfiles_views
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

# Everything the page loads comes from this origin: no CDN, no inline script or style.
# 'self' in connect-src also covers ws:/wss: to the same host (CSP Level 3). With Supabase,
# the page also renews its token at SUPABASE_URL's auth server (added to connect-src).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)


def _auth_origin() -> str:
    parts = urlsplit(settings.SUPABASE_URL)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


@require_safe
@never_cache
def interview_page(request, session_id):
    # Where the page renews its access token: Supabase's auth server, or this server's
    # stand-in (realtime/token_refresh.py) when SUPABASE_URL is unset. The anon key is
    # public by Supabase's design (it only identifies the project).
    response = render(request, "interviews/interview.html", {
        "session_id": str(session_id),
        "auth_url": settings.SUPABASE_URL,
        "auth_key": settings.SUPABASE_ANON_KEY if settings.SUPABASE_URL else "",
    })
    origin = _auth_origin()
    response["Content-Security-Policy"] = (
        CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {origin}")
        if origin else CONTENT_SECURITY_POLICY
    )
    # The token is in the fragment, which browsers never put in a Referer; be strict anyway.
    response["Referrer-Policy"] = "no-referrer"
    response["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()"
    return response


@require_safe
def static_file(request, path):
    """Serve a file found by the staticfiles finders, from the daphne process itself.

    daphne serves the ASGI application only, and with DEBUG off Django serves no static
    files, so the page's scripts and styles come through this view. It answers
    conditional requests (Last-Modified / 304), which is enough for a handful of small
    files; a deployment with heavy traffic can put WhiteNoise or a CDN in front.
    """
    response = staticfiles_views.serve(request, path, insecure=True)
    response["Cache-Control"] = "no-cache"  # revalidate: a new deploy is picked up at once
    return response
