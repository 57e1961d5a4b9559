#!/usr/bin/env bash
# The dashboard in a real browser: starts `ward serve --demo`, then tests/browser/dashboard.mjs
# drives /dashboard in Debian's headless chromium through playwright-core.
#
#   tests/browser/run.sh [PATH_TO_WARD_BINARY] [SCREENSHOT_DIR]
# Installs chromium (Debian) and playwright-core (npm, pinned by package-lock.json) when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ward="$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/ward}")"
shots="${2:-$(mktemp -d)}"
mkdir -p "$shots"

if ! command -v chromium >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
if [[ ! -d "$here/node_modules/playwright-core" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

work="$(mktemp -d)"
log="$work/ward.log"
cleanup() {
  if [[ -n "${pid:-}" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$work" && exec env WARD_SERVER__HTTP_ADDR=127.0.0.1:0 WARD_SERVER__OPS_ADDR=127.0.0.1:0 \
  WARD_SERVER__GRPC_ADDR=127.0.0.1:0 WARD_LOG__FORMAT=json "$ward" serve --demo >"$log" 2>&1) &
pid=$!

addr=""
for _ in $(seq 1 100); do
  addr="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: event = json.loads(line)
    except ValueError: continue
    if event.get("message") == "listening" and event.get("listener") == "http": print(event["addr"]); break' "$log")"
  [[ -n "$addr" ]] && curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
if [[ -z "$addr" ]]; then
  echo "ward did not start; its log:" >&2
  cat "$log" >&2
  exit 1
fi

if ! node "$here/dashboard.mjs" "http://$addr" "$shots"; then
  echo "dashboard test failed; ward's log:" >&2
  tail -n 50 "$log" >&2
  exit 1
fi
