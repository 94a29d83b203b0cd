"""The machine's real services (Redis, PostgreSQL) for tests that need them.

On a developer's machine without them the test is skipped with a reason; in CI
(CI=true) a missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(service: str, host: str, port: int) -> None:
    if _listening(host, port):
        return
    message = f"{service} is not running on {host}:{port} (scripts/test.sh starts it when it is installed)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def redis_url(db: int = 9) -> str:
    """The machine's Redis; each pytest-xdist worker gets its own pair of databases, so
    parallel modules never share user slots, leases or groups (gw0: 9-10, gw1: 11-12...)."""
    require("Redis", REDIS_HOST, REDIS_PORT)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db += 2 * int(worker.removeprefix("gw") or 0)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


@contextmanager
def postgres_database():
    """A fresh PostgreSQL database for one test module, dropped afterwards."""
    require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    import psycopg

    admin = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"
    name = f"interview_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
