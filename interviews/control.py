"""Control of live sessions from the recruiter's side, and the candidate's link.

`interviews` never imports the transport. Two things the admin and the API need do
depend on it, so `realtime` installs them when it starts (realtime/apps.py):

- ending a live session: the connection that holds it may sit on any worker, so the
  request travels through the channel layer (realtime/control.py); the holder ends it
  the way the candidate would have, and its candidate gets `server-session-ended`;
- the candidate's link: with local demo tokens (no Supabase), a link carries an access
  token and a refresh token in its fragment (`#access_token=...&refresh_token=...`, the
  shape of Supabase's sign-in redirect); with Supabase, the candidate signs in and the
  link is the bare page.
"""

from __future__ import annotations

from typing import Callable

# (session_id, reason) -> True when the connection holding the session ended it.
LiveEnder = Callable[[str, str], bool]
# user_id -> the fragment of the candidate's link (its tokens), or None (they sign in elsewhere).
TokenIssuer = Callable[[str], "str | None"]

_ender: LiveEnder | None = None
_issuer: TokenIssuer | None = None


def set_live_ender(ender: LiveEnder | None) -> None:
    global _ender
    _ender = ender


def set_token_issuer(issuer: TokenIssuer | None) -> None:
    global _issuer
    _issuer = issuer


def end_live(session_id: str, reason: str) -> bool:
    """Ask the connection holding the session to end it; False when none answered."""
    ender = _ender
    return bool(ender and ender(str(session_id), reason))


def candidate_link(*, base_url: str, session_id: str, owner_id: str) -> str:
    """The interview page for the candidate; with demo tokens, ready to open."""
    url = f"{base_url.rstrip('/')}/interview/{session_id}/"
    issuer = _issuer
    fragment = issuer(str(owner_id)) if issuer else None
    # The tokens travel in the fragment, which browsers never send to a server.
    return f"{url}#{fragment}" if fragment else url
