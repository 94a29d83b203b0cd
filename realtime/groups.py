"""Channel layer group names for a session."""


def live_group(session_id: str) -> str:
    """Live events for whoever watches the session (recruiters), on any worker."""
    return f"session.{session_id}"


def owner_group(session_id: str) -> str:
    """The connection that owns the session; a new one tells it to let go."""
    return f"session-owner.{session_id}"
