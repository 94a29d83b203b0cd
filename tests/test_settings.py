"""Settings an operator meets: production refuses the demo's defaults; logs can be JSON."""

import json
import os
import subprocess
import sys

from tests.servers import ROOT


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DJANGO_ENV")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_refuses_the_demo_secret_key_and_debug():
    refused = manage("check", DJANGO_ENV="production")
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY" in refused.stderr
    key = "k" * 50
    assert "DJANGO_DEBUG" in manage("check", DJANGO_ENV="production", DJANGO_SECRET_KEY=key, DJANGO_DEBUG="1").stderr
    assert manage("check", DJANGO_ENV="production", DJANGO_SECRET_KEY=key).returncode == 0
    assert manage("check").returncode == 0  # the demo needs nothing


def test_json_logs_are_one_object_a_line():
    result = manage("shell", "-c", "import logging; logging.getLogger('realtime.test').warning('session %s: hello', 'abc')",
                    LOG_FORMAT="json")
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "session abc: hello" and entry["level"] == "WARNING" and entry["logger"] == "realtime.test"
