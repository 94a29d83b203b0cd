"""The demo auth server's token renewal (POST /auth/v1/token?grant_type=refresh_token):
GoTrue's wire format, rotation, and clear refusals of everything else."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs

import pytest
from asgiref.sync import async_to_sync
from django.test import Client, override_settings

from interviews.models import SpentRefreshToken
from realtime import control, token_refresh
from realtime.auth import demo_refresh_token_issue, demo_token_issue, get_token_verifier, reset_token_verifier

pytestmark = pytest.mark.django_db  # spent refresh tokens are rows (every worker sees them)

URL = "/auth/v1/token?grant_type=refresh_token"


@pytest.fixture(autouse=True)
def fresh_state():
    token_refresh.reset_state()
    reset_token_verifier()
    yield
    token_refresh.reset_state()


@pytest.fixture
def client():
    return Client()


def refresh(client, refresh_token, *, url=URL, address="198.51.100.7"):
    return client.post(url, data=json.dumps({"refresh_token": refresh_token}), content_type="application/json",
                       REMOTE_ADDR=address)


def refused(response, status, error):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error and body["error_description"], body
    assert response["Cache-Control"] == "no-store"
    return body["error_description"]


def test_a_refresh_token_gets_a_new_access_token_for_the_same_user_in_gotrue_shape(client):
    user = str(uuid.uuid4())
    response = refresh(client, demo_refresh_token_issue(user_id=user))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["user"] == {"id": user, "aud": "authenticated", "role": "authenticated"}
    identity = async_to_sync(get_token_verifier().verify)(body["access_token"])
    assert identity.user_id == user and identity.expires_at == body["expires_at"]


def test_each_use_rotates_the_refresh_token_and_a_spent_one_is_refused(client):
    first = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    second = refresh(client, first).json()["refresh_token"]
    assert second != first
    assert "Already Used" in refused(refresh(client, first), 400, "invalid_grant")
    third = refresh(client, second)
    assert third.status_code == 200 and third.json()["refresh_token"] not in (first, second)


def test_expired_tampered_and_foreign_refresh_tokens_are_refused(client):
    user = str(uuid.uuid4())
    expired = demo_refresh_token_issue(user_id=user, ttl_seconds=-1)
    assert "expired" in refused(refresh(client, expired), 400, "invalid_grant")

    good = demo_refresh_token_issue(user_id=user)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    refused(refresh(client, tampered), 400, "invalid_grant")
    # Another user's name spliced into a good signature is not a token either.
    other = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    refused(refresh(client, other.split(":")[0] + ":" + good.split(":", 1)[1]), 400, "invalid_grant")
    # An access token is not a refresh token.
    refused(refresh(client, demo_token_issue(user_id=user)), 400, "invalid_grant")
    refused(refresh(client, "x" * 600), 400, "invalid_grant")
    # None of these spent the good one.
    assert refresh(client, good).status_code == 200


def test_a_renewal_while_the_database_is_unavailable_is_a_retry_and_spends_nothing(client, monkeypatch):
    token = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    # The real database, failing: the table of spent tokens cannot be reached.
    monkeypatch.setattr(SpentRefreshToken._meta, "db_table", "no_such_table_of_spent_tokens")
    response = refresh(client, token)
    assert "try again" in refused(response, 503, "temporarily_unavailable")
    assert response["Retry-After"]
    monkeypatch.undo()
    assert refresh(client, token).status_code == 200  # not spent by the failed attempt


def test_requests_that_are_not_a_refresh_grant_get_a_clear_error(client):
    token = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    refused(refresh(client, token, url="/auth/v1/token?grant_type=password"), 400, "unsupported_grant_type")
    refused(refresh(client, token, url="/auth/v1/token"), 400, "unsupported_grant_type")
    refused(client.post(URL, data=json.dumps({}), content_type="application/json"), 400, "invalid_request")
    refused(client.post(URL, data=json.dumps({"refresh_token": 7}), content_type="application/json"),
            400, "invalid_request")
    refused(client.post(URL, data="{not json", content_type="application/json"), 400, "invalid_request")
    refused(client.post(URL, data=json.dumps([token]), content_type="application/json"), 400, "invalid_request")
    refused(client.post(URL, data={"refresh_token": token}), 400, "invalid_request")  # a form, not JSON
    big = json.dumps({"refresh_token": token, "padding": "x" * 4096})
    refused(client.post(URL, data=big, content_type="application/json"), 413, "request_too_large")
    response = client.get(URL)
    refused(response, 405, "invalid_request")
    assert response["Allow"] == "POST"
    assert refresh(client, token).status_code == 200  # still good after all that


def test_renewals_are_rate_limited_per_user_and_per_address(client):
    chain = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    for _ in range(token_refresh.USER_BURST):
        response = refresh(client, chain, address="198.51.100.8")
        assert response.status_code == 200
        chain = response.json()["refresh_token"]
    limited = refresh(client, chain, address="198.51.100.8")
    refused(limited, 429, "over_request_rate_limit")
    assert int(limited["Retry-After"]) >= 1
    # Another candidate is not held back by that one.
    another = demo_refresh_token_issue(user_id=str(uuid.uuid4()))
    assert refresh(client, another, address="198.51.100.8").status_code == 200

    for _ in range(token_refresh.ADDRESS_BURST):
        refresh(client, "garbage", address="203.0.113.9")
    refused(refresh(client, "garbage", address="203.0.113.9"), 429, "over_request_rate_limit")
    refused(refresh(client, "garbage", address="203.0.113.10"), 400, "invalid_grant")


@override_settings(SUPABASE_URL="https://project.supabase.example")
def test_with_supabase_the_endpoint_does_not_exist(client):
    refused(refresh(client, demo_refresh_token_issue(user_id=str(uuid.uuid4()))), 404, "not_found")


def test_a_candidate_link_carries_both_tokens_in_supabases_redirect_shape():
    user = str(uuid.uuid4())
    fields = parse_qs(control.link_token(user))
    assert set(fields) == {"access_token", "refresh_token", "expires_at", "expires_in", "token_type"}
    identity = async_to_sync(get_token_verifier().verify)(fields["access_token"][0])
    assert identity.user_id == user and identity.expires_at == int(fields["expires_at"][0])
    assert fields["token_type"] == ["bearer"]
    assert refresh(Client(), fields["refresh_token"][0]).json()["user"]["id"] == user


def test_the_page_names_its_auth_server_and_may_reach_it(client):
    page_url = f"/interview/{uuid.uuid4()}/"
    response = client.get(page_url)
    assert 'data-auth-url=""' in response.content.decode()  # this server's stand-in
    assert "connect-src 'self';" in response["Content-Security-Policy"]
    with override_settings(SUPABASE_URL="https://project.supabase.example", SUPABASE_ANON_KEY="anon-key-123"):
        response = client.get(page_url)
    html = response.content.decode()
    assert 'data-auth-url="https://project.supabase.example"' in html and 'data-auth-key="anon-key-123"' in html
    assert "connect-src 'self' https://project.supabase.example;" in response["Content-Security-Policy"]
