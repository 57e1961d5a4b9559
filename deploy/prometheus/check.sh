#!/usr/bin/env bash
# Checks the monitoring files: the alert rules and the example scrape configuration with promtool
# (from Debian's prometheus package, installed only when promtool is missing), the rules' unit
# tests, and that the Grafana dashboard is valid JSON with a query on every panel. Given the ward
# binary (`check.sh target/debug/ward`), it also lints a live process's /metrics with
# `promtool check metrics`. A ward-bus unit test checks that every metric these files name is one
# Ward exports.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian package prometheus)"
  # The package's maintainer scripts would start a Prometheus server; a policy-rc.d answering
  # 101 ("action forbidden") stops invoke-rc.d from starting it. An existing one is left alone.
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  install_status=0
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
    install_status=$?
  if [[ "$created_policy" -eq 1 ]]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [[ "$install_status" -ne 0 ]]; then
    echo "could not install the prometheus package" >&2
    exit "$install_status"
  fi
  # Where systemd runs, the unit may still be enabled for the next boot: keep it off.
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
promtool --version | head -n1

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/alerts_test.yml
echo "== promtool check config"
promtool check config deploy/prometheus/prometheus.yml

echo "== Grafana dashboard"
python3 - deploy/grafana/ward.json <<'PY'
import json
import sys

with open(sys.argv[1]) as file:
    dashboard = json.load(file)
panels = [panel for panel in dashboard["panels"] if panel.get("type") != "row"]
assert panels, "the dashboard has no panels"
for panel in panels:
    exprs = [target.get("expr", "") for target in panel.get("targets", [])]
    assert exprs and all(exprs), f"panel {panel.get('title')!r} has no query"
print(f"{len(panels)} panels, each with a query")
PY

ward_bin="${1:-}"
if [[ -n "$ward_bin" ]]; then
  echo "== promtool check metrics (a running ward's /metrics)"
  workdir="$(mktemp -d)"
  (
    cd "$workdir" &&
      WARD_SERVER__HTTP_ADDR=127.0.0.1:0 WARD_SERVER__OPS_ADDR=127.0.0.1:0 \
        WARD_SERVER__GRPC_ADDR=127.0.0.1:0 WARD_LOG__FORMAT=json \
        exec "$ward_bin" serve --demo
  ) >"$workdir/ward.log" 2>&1 &
  ward_pid=$!
  trap 'kill "$ward_pid" 2>/dev/null; wait "$ward_pid" 2>/dev/null; rm -rf "$workdir"' EXIT
  # Prints the address a listener bound, nothing before it has.
  listener_addr() {
    { grep '"listening"' "$workdir/ward.log" | grep "\"listener\":\"$1\"" |
      grep -o '"addr":"[^"]*"' | cut -d'"' -f4 | head -n1; } || true
  }
  ops_addr=""
  http_addr=""
  for _ in $(seq 1 600); do
    ops_addr="$(listener_addr ops)"
    http_addr="$(listener_addr http)"
    if [[ -n "$ops_addr" && -n "$http_addr" ]] && curl -sf "http://$ops_addr/readyz" >/dev/null; then
      break
    fi
    sleep 0.1
  done
  if [[ -z "$ops_addr" || -z "$http_addr" ]]; then
    echo "ward did not start:" >&2
    cat "$workdir/ward.log" >&2
    exit 1
  fi
  # A few answers, so the request families have series: a 401 and an unmatched 404.
  curl -s -o /dev/null "http://$http_addr/api/patients/123e4567-e89b-12d3-a456-426614174000"
  curl -s -o /dev/null "http://$http_addr/no/such/route"
  curl -sf "http://$ops_addr/metrics" >"$workdir/metrics.txt"
  promtool check metrics <"$workdir/metrics.txt"
  echo "$(grep -vc '^#' "$workdir/metrics.txt") series pass promtool check metrics"
fi
