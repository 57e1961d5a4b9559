#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from /openapi.json and checks that
# Ward never answers 5xx and that every response matches the published schema (status codes,
# content types, bodies). Runs against the real binary with --demo data and an admin token.
#
#   tests/fuzz/schemathesis.sh [PATH_TO_WARD_BINARY]
set -euo pipefail

ward="${1:-${CARGO_TARGET_DIR:-target}/debug/ward}"
if ! command -v schemathesis >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
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

token="$(curl -fs -X POST "http://$addr/auth/login" -H 'content-type: application/json' \
  -d '{"email":"testuser@test.com","password":"password123"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Logging out would end the run's own session halfway; tests/api covers logout.
schemathesis run "http://$addr/openapi.json" \
  --header "Authorization: Bearer $token" \
  --exclude-path /auth/logout \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${WARD_FUZZ_EXAMPLES:-50}" \
  --seed "${WARD_FUZZ_SEED:-20261125}"
