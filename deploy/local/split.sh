#!/usr/bin/env bash
# Ward split by role on one machine: a Kafka-protocol broker (tansu), one PostgreSQL database per
# module, and five `ward` processes (one role each) on loopback, the gateway on :8080.
#
#   deploy/local/split.sh start DIR   start what is not running (state and logs under DIR)
#   deploy/local/split.sh stop DIR    stop everything started from DIR
#   deploy/local/split.sh status DIR  what runs
#
# Logs: DIR/<name>.log, pids: DIR/<name>.pid for broker, gateway, auth, patients, billing,
# analytics. Settings (environment): WARD_SPLIT_PG (default postgres://postgres@127.0.0.1:5432),
# WARD_SPLIT_DB_PREFIX (default ward_split), WARD_BROKER_PORT (default 9092), WARD_BIN (default:
# build with cargo).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
command="${1:-}"
dir="${2:-}"
if [[ -z "$command" || -z "$dir" ]]; then
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

pg="${WARD_SPLIT_PG:-postgres://postgres@127.0.0.1:5432}"
prefix="${WARD_SPLIT_DB_PREFIX:-ward_split}"
broker_port="${WARD_BROKER_PORT:-9092}"
roles=(auth patients billing analytics gateway)
declare -A grpc_port=([auth]=50051 [patients]=50052 [billing]=50053 [analytics]=50054 [gateway]=50055)
# 9092 is the broker's, so the ops ports skip it.
declare -A ops_port=([gateway]=9090 [auth]=9091 [patients]=9093 [billing]=9094 [analytics]=9095)

is_running() {
  local pid_file="$dir/$1.pid"
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

ward_bin() {
  if [[ -n "${WARD_BIN:-}" ]]; then
    echo "$WARD_BIN"
    return
  fi
  (cd "$repo" && cargo build --quiet --bin ward)
  local target="${CARGO_TARGET_DIR:-$repo/target}"
  echo "$target/debug/ward"
}

common_env() {
  echo "WARD_EVENTS__BACKEND=kafka"
  echo "WARD_EVENTS__BROKERS=127.0.0.1:$broker_port"
  for module in auth patients billing analytics; do
    echo "WARD_DATABASE__${module^^}=$pg/${prefix}_$module"
  done
  for module in auth patients billing analytics; do
    echo "WARD_PEERS__${module^^}=http://127.0.0.1:${grpc_port[$module]}"
  done
}

create_databases() {
  for module in auth patients billing analytics; do
    local name="${prefix}_$module"
    if ! psql "$pg/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
      psql "$pg/postgres" -qc "CREATE DATABASE $name"
      echo "created database $name"
    fi
  done
}

wait_ready() {
  local name="$1" port="$2" deadline=$((SECONDS + 90))
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    if ! is_running "$name"; then
      echo "$name exited; last lines of $dir/$name.log:" >&2
      tail -n 20 "$dir/$name.log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "$name is not ready after 90 s; /readyz says:" >&2
      curl -s "http://127.0.0.1:$port/readyz" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

start() {
  "$here/broker.sh" install
  "$here/broker.sh" start "$dir"
  create_databases
  local bin
  bin="$(ward_bin)"
  mapfile -t env < <(common_env)
  (cd "$dir" && env "${env[@]}" "$bin" migrate >>"$dir/migrate.log" 2>&1) || {
    echo "ward migrate failed; see $dir/migrate.log" >&2
    exit 1
  }
  if [[ ! -f "$dir/data/keys/auth-public.key" ]]; then
    (cd "$dir" && "$bin" keys generate >/dev/null)
  fi
  for role in "${roles[@]}"; do
    if is_running "$role"; then
      continue
    fi
    local extra=()
    if [[ "$role" == auth || "$role" == patients ]]; then
      extra=(--demo)   # idempotent: the demo user and patients are loaded once
    fi
    local http_addr=127.0.0.1:0
    if [[ "$role" == gateway ]]; then
      http_addr=127.0.0.1:8080
    fi
    (cd "$dir" && exec env "${env[@]}" \
      WARD_SERVER__GRPC_ADDR="127.0.0.1:${grpc_port[$role]}" \
      WARD_SERVER__OPS_ADDR="127.0.0.1:${ops_port[$role]}" \
      WARD_SERVER__HTTP_ADDR="$http_addr" \
      nohup "$bin" serve --roles "$role" "${extra[@]}" >>"$dir/$role.log" 2>&1) &
    echo $! >"$dir/$role.pid"
    if [[ "$role" == gateway ]]; then
      echo "started $role (pid $(cat "$dir/$role.pid"), http 127.0.0.1:8080, ops 127.0.0.1:${ops_port[$role]})"
    else
      echo "started $role (pid $(cat "$dir/$role.pid"), gRPC 127.0.0.1:${grpc_port[$role]}, ops 127.0.0.1:${ops_port[$role]})"
    fi
  done
  for role in "${roles[@]}"; do
    wait_ready "$role" "${ops_port[$role]}"
  done
  echo "ready: the gateway answers on http://127.0.0.1:8080 (logs and pids in $dir)"
}

stop() {
  for role in gateway analytics billing patients auth; do
    if is_running "$role"; then
      kill -TERM "$(cat "$dir/$role.pid")" 2>/dev/null || true
    fi
  done
  for role in gateway analytics billing patients auth; do
    local deadline=$((SECONDS + 20))
    while is_running "$role" && ((SECONDS < deadline)); do sleep 0.2; done
    if is_running "$role"; then kill -KILL "$(cat "$dir/$role.pid")" 2>/dev/null || true; fi
    rm -f "$dir/$role.pid"
  done
  "$here/broker.sh" stop "$dir"
  echo "stopped"
}

status() {
  for name in broker "${roles[@]}"; do
    if is_running "$name"; then echo "$name: running (pid $(cat "$dir/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status DIR" >&2; exit 2 ;;
esac
