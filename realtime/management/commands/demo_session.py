"""Make a demo session ready to join and print how to join it, as one JSON line."""

import json
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from interviews import services

from realtime.auth import demo_link_fragment


class Command(BaseCommand):
    help = ("Ensure the demo interview exists, create a session of it and print "
            "{sessionId, userId, token, refreshToken, expiresAt, url}.")

    def add_arguments(self, parser):
        parser.add_argument("--user", default=settings.DEMO_USER_ID, help="The candidate's user id (a UUID).")
        parser.add_argument("--ttl", type=int, default=4 * 3600,
                            help="The access token's lifetime in seconds (the page renews it).")
        parser.add_argument("--base-url", default=settings.DEMO_BASE_URL, help="Where the server is reached.")

    def handle(self, *args, user, ttl, base_url, **options):
        try:
            user_id = str(uuid.UUID(user))
        except ValueError:
            raise CommandError(f"--user must be a UUID, got {user!r}") from None
        if settings.SUPABASE_URL:
            raise CommandError("SUPABASE_URL is set: tokens come from Supabase, not from this command.")
        interview = services.interview_ensure_demo()
        session = services.session_create(interview=interview, owner_id=user_id)
        # The tokens travel in the URL fragment, which browsers never send to the server, in
        # the shape of Supabase's sign-in redirect: the page renews the access token with
        # the refresh token (POST /auth/v1/token?grant_type=refresh_token) before it expires.
        fragment, tokens = demo_link_fragment(user_id=user_id, ttl_seconds=ttl)
        url = f"{base_url.rstrip('/')}/interview/{session.pk}/#{fragment}"
        self.stdout.write(json.dumps({
            "sessionId": str(session.pk), "userId": user_id, "token": tokens["access_token"],
            "refreshToken": tokens["refresh_token"], "expiresAt": tokens["expires_at"], "url": url,
        }))
