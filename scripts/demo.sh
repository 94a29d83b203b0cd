#!/usr/bin/env bash
# Installs everything and starts the interview demo on one machine (SQLite, in-memory
# channel layer, local speech). Open the printed URL in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export DEMO_BASE_URL=${DEMO_BASE_URL:-http://$HOST:$PORT}
.venv/bin/python manage.py migrate --noinput -v 0
session=$(.venv/bin/python manage.py demo_session)
url=$(printf '%s' "$session" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["url"])')
echo
echo "Interview ready. Open this in a browser (it holds your access token; keep it private):"
echo "  $url"
echo "Admin: $DEMO_BASE_URL/admin/ (create a login with: .venv/bin/python manage.py createsuperuser)"
echo
exec .venv/bin/python -m realtime.serve -b "$HOST" -p "$PORT" interview_site.asgi:application
