#!/usr/bin/env bash
# Checks the monitoring files: the alert rules and the example scrape configuration with promtool
# (from Debian's prometheus package, installed only when promtool is missing), the rules' unit
# tests, and that the Grafana dashboard is valid JSON with a query on every panel.
# The api test `metrics` checks that every metric these files name is one Ward exports.
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
