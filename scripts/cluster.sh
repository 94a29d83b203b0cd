#!/usr/bin/env bash
# The production shape on one machine, without Docker: nginx in front of N daphne workers
# sharing PostgreSQL and Redis. nginx runs as its own process (unprivileged port, pid,
# logs and temporary files in the run directory), never as the system service.
#
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/interview \
#   REDIS_URL=redis://127.0.0.1:6379/0 scripts/cluster.sh start [N]
#   scripts/cluster.sh status
#   scripts/cluster.sh rolling-restart     # SIGTERM each worker in turn, wait until it is ready again
#   scripts/cluster.sh stop
#
# Settings (environment): CLUSTER_WORKERS (2), CLUSTER_PORT (8080: nginx),
# CLUSTER_WORKER_PORT (8001: the first worker; the others follow), CLUSTER_RUN_DIR
# (var/cluster), CLUSTER_NGINX_PROCESSES (1), CLUSTER_RESTART_PAUSE (5 s between workers
# in a rolling restart); every setting of the project
# (README, docs/production.md) is passed to the workers as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PY="$ROOT/.venv/bin/python"
RUN_DIR="$(mkdir -p "${CLUSTER_RUN_DIR:-var/cluster}" && cd "${CLUSTER_RUN_DIR:-var/cluster}" && pwd)"
PORT="${CLUSTER_PORT:-8080}"
FIRST_WORKER_PORT="${CLUSTER_WORKER_PORT:-8001}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

say() { echo "==> $*"; }
die() { echo "!! $*" >&2; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ready() { "$PY" -c "import sys, urllib.request
try: sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$1/readyz', timeout=3).status == 200 else 1)
except Exception: sys.exit(1)"; }
worker_ports() { [ -f "$RUN_DIR/workers" ] && cat "$RUN_DIR/workers" || true; }

wait_ready() {  # port [seconds]
  local port=$1 tries=$(( ${2:-60} * 5 ))
  for _ in $(seq "$tries"); do
    ready "$port" && return 0
    alive "$RUN_DIR/worker-$port.pid" || { tail -20 "$RUN_DIR/logs/worker-$port.log" >&2; die "worker $port exited"; }
    sleep 0.2
  done
  die "worker $port not ready (see $RUN_DIR/logs/worker-$port.log)"
}

start_worker() {  # port
  local port=$1
  listening "$port" && die "port $port is taken"
  DEMO_BASE_URL="${DEMO_BASE_URL:-http://127.0.0.1:$PORT}" nohup "$PY" -m realtime.serve -b 127.0.0.1 -p "$port" \
    --proxy-headers interview_site.asgi:application >>"$RUN_DIR/logs/worker-$port.log" 2>&1 &
  echo $! >"$RUN_DIR/worker-$port.pid"
}

stop_worker() {  # port: SIGTERM (candidates are told 4012 and their writes flushed), then wait
  local pidfile="$RUN_DIR/worker-$1.pid" pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then echo "!! worker $1 still running after 20 s: SIGKILL" >&2; kill -KILL "$pid"; fi
  rm -f "$pidfile"
}

render() {  # template output NAME=VALUE...
  local template=$1 output=$2
  shift 2
  "$PY" deploy/render.py "$template" "$@" >"$output"
}

cmd_start() {
  local workers=${1:-${CLUSTER_WORKERS:-2}}
  [ -x "$PY" ] || die "no .venv: run scripts/install.sh first"
  [ -x "$NGINX" ] || die "nginx is not installed (apt-get install nginx)"
  [ -n "${DATABASE_URL:-}" ] || die "set DATABASE_URL (PostgreSQL: several workers cannot share SQLite), e.g.
   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/interview REDIS_URL=redis://127.0.0.1:6379/0 $0 start"
  [[ "$DATABASE_URL" == postgres* ]] || die "DATABASE_URL must be PostgreSQL: several workers cannot share SQLite"
  [ -n "${REDIS_URL:-}" ] || die "set REDIS_URL (the channel layer the workers share), e.g. redis://127.0.0.1:6379/0"
  alive "$RUN_DIR/nginx.pid" && die "already running (scripts/cluster.sh status; stop first)"
  mkdir -p "$RUN_DIR/conf" "$RUN_DIR/logs" "$RUN_DIR/tmp"

  say "migrating the database and collecting static files"
  "$PY" manage.py migrate --noinput -v 0
  "$PY" manage.py collectstatic --noinput -v 0
  local static_root
  static_root=$("$PY" manage.py shell -c "from django.conf import settings; print(settings.STATIC_ROOT)" 2>/dev/null | tail -1)

  : >"$RUN_DIR/workers"
  local servers="" port
  for i in $(seq 0 $((workers - 1))); do
    port=$((FIRST_WORKER_PORT + i))
    echo "$port" >>"$RUN_DIR/workers"
    servers+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n    '
  done
  say "starting $workers workers on ports $(worker_ports | paste -sd, -)"
  for port in $(worker_ports); do start_worker "$port"; done
  for port in $(worker_ports); do wait_ready "$port"; done

  say "starting nginx on 127.0.0.1:$PORT"
  render deploy/nginx/interview.conf.template "$RUN_DIR/conf/interview.conf" \
    "NGINX_LISTEN=127.0.0.1:$PORT" "NGINX_UPSTREAM_SERVERS=$servers" "NGINX_STATIC_ROOT=$static_root"
  local user_directive=""
  [ "$(id -u)" = 0 ] && user_directive="user $(id -un);"
  render deploy/nginx/nginx.conf.template "$RUN_DIR/conf/nginx.conf" \
    "NGINX_RUN_DIR=$RUN_DIR" "NGINX_USER_DIRECTIVE=$user_directive" \
    "NGINX_WORKER_PROCESSES=${CLUSTER_NGINX_PROCESSES:-1}" "NGINX_ACCESS_LOG=$RUN_DIR/logs/access.log"
  local nginx_args=(-p "$RUN_DIR" -c "$RUN_DIR/conf/nginx.conf" -e "$RUN_DIR/logs/error.log")
  "$NGINX" "${nginx_args[@]}" -t -q
  "$NGINX" "${nginx_args[@]}"
  for _ in $(seq 50); do listening "$PORT" && break; sleep 0.1; done
  listening "$PORT" || die "nginx did not start (see $RUN_DIR/logs/error.log)"
  say "serving on http://127.0.0.1:$PORT (logs in $RUN_DIR/logs)"
  echo "    a demo session: DEMO_BASE_URL=http://127.0.0.1:$PORT $PY manage.py demo_session"
}

cmd_stop() {
  if alive "$RUN_DIR/nginx.pid"; then
    say "stopping nginx"
    kill -QUIT "$(cat "$RUN_DIR/nginx.pid")"  # graceful: it lets open sockets finish while the workers drain
    for _ in $(seq 50); do alive "$RUN_DIR/nginx.pid" || break; sleep 0.1; done
  fi
  for port in $(worker_ports); do
    say "stopping worker $port"
    stop_worker "$port"
  done
  if alive "$RUN_DIR/nginx.pid"; then kill -TERM "$(cat "$RUN_DIR/nginx.pid")"; fi
  rm -f "$RUN_DIR/workers"
}

cmd_status() {
  local code=0 state
  if alive "$RUN_DIR/nginx.pid"; then
    echo "nginx   127.0.0.1:$PORT  running (pid $(cat "$RUN_DIR/nginx.pid"))"
  else
    echo "nginx   127.0.0.1:$PORT  stopped"; code=1
  fi
  for port in $(worker_ports); do
    if ! alive "$RUN_DIR/worker-$port.pid"; then state="stopped"; code=1
    elif ready "$port"; then state="ready (pid $(cat "$RUN_DIR/worker-$port.pid"))"
    else state="running, NOT ready (pid $(cat "$RUN_DIR/worker-$port.pid")): curl http://127.0.0.1:$port/readyz"; code=1
    fi
    echo "worker  127.0.0.1:$port  $state"
  done
  return $code
}

cmd_rolling_restart() {
  [ -n "$(worker_ports)" ] || die "not running"
  local first=1
  for port in $(worker_ports); do
    # Let the candidates the last worker sent away finish reconnecting before the next one stops.
    [ "$first" = 1 ] || sleep "${CLUSTER_RESTART_PAUSE:-5}"
    first=0
    say "restarting worker $port (its candidates reconnect to the others)"
    stop_worker "$port"
    start_worker "$port"
    wait_ready "$port"
  done
  say "every worker restarted"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  rolling-restart) cmd_rolling_restart ;;
  *) echo "usage: $0 start [N] | stop | status | rolling-restart" >&2; exit 2 ;;
esac
