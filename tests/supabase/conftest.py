import pytest

from tests.supabase.stack import SupabaseStack


@pytest.fixture(scope="module")
def stack():
    """One Supabase-like stack per test module (fresh database, dropped afterwards)."""
    stack = SupabaseStack().start()
    try:
        yield stack
    finally:
        stack.stop()
