"""Reading a candidate's session from Supabase during the handshake, within a deadline.

One supabase-py async client per connection, carrying the candidate's own token, so
PostgREST applies row level security as that user; it is closed when the read is done
and never shared (a shared client whose Authorization header changed per request would
leak one candidate's rights to another's request).

supabase-py would wait 120 s and retry reads on 503 with growing sleeps; a handshake
cannot. Its retries are off here, and the whole read runs under one deadline
(``SUPABASE_DEADLINE_SECONDS``): a slow, down or failing Supabase becomes
``SupabaseUnavailable``, which the consumer turns into ``server_unavailable`` (4503,
retry shortly). Nothing is mirrored unless the whole read succeeded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
from .db import database_call
from django.conf import settings

from interviews.selectors import SessionAccessError
from interviews.supabase_source import SESSION_SELECT, SupabaseDataError, session_mirror, session_record_parse

from .auth import AuthError, Identity

log = logging.getLogger(__name__)

# PostgREST's codes for a token it would not accept (bad signature, expired, bad claims).
_JWT_ERROR_CODES = {"PGRST300", "PGRST301", "PGRST302", "PGRST303"}


class SupabaseUnavailable(Exception):
    """Supabase did not answer in time or answered with a server error: retry shortly."""


# --- Importing supabase-py ------------------------------------------------------------
# supabase-py imports a PyPI package named `realtime`, which this project's own `realtime`
# package shadows (settings puts the project first on sys.path). Import it once with the
# PyPI package in place, then put ours back; supabase's modules keep their references.

_supabase_lock = threading.Lock()
_supabase: tuple[Any, Any] | None = None


def supabase_api() -> tuple[Any, Any]:
    """supabase-py's (AsyncClient, AsyncClientOptions)."""
    global _supabase
    with _supabase_lock:
        if _supabase is None:
            _supabase = _import_supabase()
        return _supabase


def _import_supabase() -> tuple[Any, Any]:
    if "supabase" in sys.modules:  # imported some other way already (e.g. ours not loaded)
        from supabase import AsyncClient, AsyncClientOptions
        return AsyncClient, AsyncClientOptions
    package = _pypi_realtime_dir()
    ours = {name: module for name, module in sys.modules.items() if name == "realtime" or name.startswith("realtime.")}
    for name in ours:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location("realtime", os.path.join(package, "__init__.py"),
                                                      submodule_search_locations=[package])
        module = importlib.util.module_from_spec(spec)
        sys.modules["realtime"] = module
        spec.loader.exec_module(module)
        from supabase import AsyncClient, AsyncClientOptions
    finally:
        for name in [n for n in sys.modules if n == "realtime" or n.startswith("realtime.")]:
            sys.modules["_supabase_deps." + name] = sys.modules.pop(name)
        sys.modules.update(ours)
    return AsyncClient, AsyncClientOptions


def _pypi_realtime_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "realtime")
        if os.path.isfile(os.path.join(candidate, "__init__.py")) and os.path.abspath(candidate) != here:
            return candidate
    raise ImportError("supabase-py's `realtime` dependency is not installed (scripts/install.sh)")


if settings.SUPABASE_SOURCE_ENABLED:
    # Now, at start-up in the main thread: not on a live event loop, and not while a worker
    # thread might be importing one of our own realtime modules during the swap.
    supabase_api()


# --- Clients ----------------------------------------------------------------------------


class _StatusRecorder:
    """postgrest-py's APIError drops the HTTP status; the response hook keeps the last one."""

    def __init__(self) -> None:
        self.status: int | None = None

    async def __call__(self, response: httpx.Response) -> None:
        self.status = response.status_code


@asynccontextmanager
async def supabase_client(*, bearer: str, deadline_s: float) -> AsyncIterator[tuple[Any, _StatusRecorder]]:
    """A supabase-py client acting as ``bearer`` (a candidate's token or the service key),
    with its own HTTP connection pool, closed on exit."""
    AsyncClient, AsyncClientOptions = supabase_api()
    recorder = _StatusRecorder()
    http = httpx.AsyncClient(timeout=httpx.Timeout(deadline_s), follow_redirects=False,
                             event_hooks={"response": [recorder]},
                             limits=httpx.Limits(max_connections=4, max_keepalive_connections=1))
    try:
        options = AsyncClientOptions(
            headers={"Authorization": f"Bearer {bearer}"},
            httpx_client=http,
            postgrest_client_retry=False,  # the deadline decides; the client's reconnect is the retry
            auto_refresh_token=False,
            persist_session=False,
        )
        client = AsyncClient(settings.SUPABASE_URL, settings.SUPABASE_ANON_KEY, options)
        yield client, recorder
    finally:
        await http.aclose()


# --- The handshake's read ---------------------------------------------------------------


async def session_load(*, token: str, session_id: str, identity: Identity) -> None:
    """Read the session and its questions as the candidate and mirror them locally.

    Raises AuthError (Supabase refused the token), SessionAccessError (no such session for
    this user: RLS hides other users' sessions), or SupabaseUnavailable.
    """
    deadline_s = settings.SUPABASE_DEADLINE_SECONDS
    try:
        async with asyncio.timeout(deadline_s):
            row = await _session_row(token=token, session_id=session_id, deadline_s=deadline_s)
    except TimeoutError:
        log.warning("session %s: Supabase did not answer within %.1fs", session_id, deadline_s)
        raise SupabaseUnavailable("deadline") from None
    if row is None:
        raise SessionAccessError("session_not_found", "No interview session has that id.")
    try:
        record = session_record_parse(row)
        await database_call(session_mirror)(record=record, user_id=identity.user_id)
    except SupabaseDataError as error:
        log.error("session %s: Supabase's rows do not match supabase/schema.sql: %s", session_id, error)
        raise


async def _session_row(*, token: str, session_id: str, deadline_s: float) -> dict | None:
    from postgrest.exceptions import APIError

    async with supabase_client(bearer=token, deadline_s=deadline_s) as (client, recorder):
        try:
            response = await (client.table("interview_sessions").select(SESSION_SELECT)
                              .eq("id", session_id).limit(1).execute())
        except httpx.HTTPError as error:
            log.warning("session %s: Supabase unreachable: %s", session_id, type(error).__name__)
            raise SupabaseUnavailable(type(error).__name__) from None
        except APIError as error:
            raise _api_error(error, recorder.status, session_id) from None
    rows = response.data
    if not isinstance(rows, list):
        raise SupabaseDataError("PostgREST did not answer with a list")
    return rows[0] if rows else None


def _api_error(error: Exception, status: int | None, session_id: str) -> Exception:
    code = getattr(error, "code", None)
    if code in _JWT_ERROR_CODES or (status == 401 and code != "42501"):
        log.info("session %s: Supabase refused the token (%s)", session_id, code or status)
        return AuthError("token_rejected", "The interview database did not accept the token; sign in again.")
    if code == "22P02":  # invalid input syntax (a session id that is not a UUID)
        return SessionAccessError("session_not_found", "No interview session has that id.")
    if status is not None and status >= 500 or status in (408, 429):
        log.warning("session %s: Supabase answered %s", session_id, status)
        return SupabaseUnavailable(str(status))
    # 400/403/404: the schema or grants differ from supabase/schema.sql. Retrying won't help,
    # but the candidate can do nothing about it either: say it is ours.
    log.error("session %s: Supabase refused the read (HTTP %s, %s): check supabase/schema.sql",
              session_id, status, code)
    return SupabaseDataError(f"HTTP {status} {code}")
