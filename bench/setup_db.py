"""Prepare a benchmark database and print what clients need, as one JSON line.

Run inside the server's environment (same VAR_DIR / DATABASE_URL):
    python -m bench.setup_db --sessions 100 [--staff]
Migrates, creates an interview with many questions (so a session takes many turns),
one session per user (the server allows 5 connections per user) with a demo token,
and with --staff a staff user and a logged-in Django session cookie for the live view.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--staff", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    print(json.dumps(prepare(args.sessions, args.questions, args.staff)))


def prepare(count: int, questions: int, staff: bool) -> dict:
    from interviews import services
    from interviews.models import Interview, Question
    from realtime.auth import demo_token_issue

    interview = Interview.objects.create(title="Bench", role="Benchmark")
    Question.objects.bulk_create(
        Question(interview=interview, position=i, text=f"Benchmark question {i + 1}?") for i in range(questions)
    )
    sessions = []
    for _ in range(count):
        user_id = str(uuid.uuid4())
        session = services.session_create(interview=interview, owner_id=user_id)
        sessions.append({"sessionId": str(session.pk), "token": demo_token_issue(user_id=user_id, ttl_seconds=3600)})
    return {"sessions": sessions, "cookie": _staff_cookie() if staff else None}


def _staff_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:8]}", password=None, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_interviewsession"))  # what the live view checks
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


if __name__ == "__main__":
    main()
