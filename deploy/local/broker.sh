#!/usr/bin/env bash
# A local Kafka-protocol broker (tansu on SQLite) for Ward's kafka backend and its tests.
#
#   deploy/local/broker.sh install       cargo install tansu (with SQLite storage) unless present
#   deploy/local/broker.sh start DIR     start a broker whose log lives in DIR/tansu.db
#   deploy/local/broker.sh stop DIR      stop it (TERM, then KILL after a bounded wait)
#   deploy/local/broker.sh status DIR    say whether it runs (exit 0) or not (exit 3)
#
# Environment: WARD_BROKER_PORT (default 9092), WARD_BROKER_START_SECS (default 30),
# WARD_BROKER_STOP_SECS (default 10). The broker listens and advertises tcp://127.0.0.1:PORT.
# DIR/broker.log has its output, DIR/broker.pid its process id. Restarting with the same DIR keeps
# every record: the storage URL is relative to DIR.
set -euo pipefail

port="${WARD_BROKER_PORT:-9092}"
start_secs="${WARD_BROKER_START_SECS:-30}"
stop_secs="${WARD_BROKER_STOP_SECS:-10}"

die() {
    echo "broker.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 install | start DIR | stop DIR | status DIR" >&2
    exit 2
}

# Prints the tansu executable, from PATH or cargo's bin folder; fails when there is none.
find_tansu() {
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]]; then
        echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    else
        return 1
    fi
}

# Prints the pid in DIR/broker.pid when that process is alive.
running_pid() {
    local pid_file="$1/broker.pid"
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

port_open() {
    # bash's /dev/tcp: no nc or curl needed.
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

cmd_install() {
    if tansu_bin="$(find_tansu)"; then
        echo "tansu is installed: $tansu_bin"
        return 0
    fi
    echo "installing tansu with cargo (about 10-15 minutes on 2 cores)"
    cargo install --locked tansu --features libsql
}

cmd_start() {
    local dir="$1"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local pid
    if pid="$(running_pid "$dir")"; then
        echo "broker already running (pid $pid, $dir)"
        return 0
    fi
    local tansu_bin
    tansu_bin="$(find_tansu)" ||
        die "tansu is not installed; run: deploy/local/broker.sh install (cargo install --locked tansu --features libsql)"
    if port_open; then
        die "port $port is already in use; set WARD_BROKER_PORT to a free port"
    fi
    # The storage path is relative: tansu resolves sqlite://tansu.db against its working folder.
    # HUP ignored: the broker outlives the terminal that started it; `stop` signals it by pid.
    (
        cd "$dir"
        trap '' HUP
        exec "$tansu_bin" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "sqlite://tansu.db" \
            >>"$dir/broker.log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$dir/broker.pid"
    local deadline=$((SECONDS + start_secs))
    while ! port_open; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/broker.pid"
            echo "broker.sh: tansu exited during start; last lines of $dir/broker.log:" >&2
            tail -n 20 "$dir/broker.log" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "broker.sh: tansu did not open port $port within ${start_secs}s; last lines of $dir/broker.log:" >&2
            tail -n 20 "$dir/broker.log" >&2 || true
            cmd_stop "$dir" >/dev/null
            exit 1
        fi
        sleep 0.1
    done
    echo "broker running (pid $pid, 127.0.0.1:$port, $dir)"
}

cmd_stop() {
    local dir="$1"
    local pid
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/broker.pid"
        echo "broker not running ($dir)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_secs))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "broker.sh: tansu (pid $pid) ignored TERM for ${stop_secs}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    # Wait for the port to close, so an immediate restart on it cannot fail.
    local close_deadline=$((SECONDS + stop_secs))
    while port_open && ((SECONDS < close_deadline)); do
        sleep 0.1
    done
    rm -f "$dir/broker.pid"
    echo "broker stopped (pid $pid)"
}

cmd_status() {
    local dir="$1"
    local pid
    if pid="$(running_pid "$dir")"; then
        echo "broker running (pid $pid, $dir)"
    else
        echo "broker not running ($dir)"
        exit 3
    fi
}

case "${1:-}" in
install) cmd_install ;;
start) [[ $# -eq 2 ]] || usage; cmd_start "$2" ;;
stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
*) usage ;;
esac
