#!/usr/bin/env bash
# OpenAPI fuzzing of the real binary: starts `layercake serve` on loopback
# with a fresh data directory and a private token, runs schemathesis
# against its own GET /api/openapi.json with every check (`--checks all`:
# no 5xx, every status and answer as documented, schema-valid requests
# accepted and invalid ones refused, 405 for undeclared methods...; per-
# operation exceptions with their reasons in scripts/schemathesis.toml),
# bounded in examples and time, and fails on any failure, any 4xx/5xx
# without the JSON error body (scripts/schemathesis_checks.py), or a server
# that is gone at the end.
#
# Usage: scripts/schemathesis.sh [path/to/layercake] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/layercake}
seconds=${2:-90}
port=${LC_SCHEMATHESIS_PORT:-18090}

if ! command -v schemathesis >/dev/null || ! schemathesis --version | grep -q ' 4\.32\.'; then
  python3 -m pip install -q --disable-pip-version-check 'schemathesis==4.32.*'
  hash -r
fi
schemathesis --version

dir=$(mktemp -d /tmp/layercake-schemathesis.XXXXXX)
token=$("$bin" token create --data-dir "$dir/data" --name schemathesis | tail -1)
RUST_LOG=warn "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

status=0
# One worker: with two, hypothesis' lambda-source cache raced in one run
# ("AST constructor recursion depth mismatch", a runtime error, not ours).
(cd scripts && SCHEMATHESIS_HOOKS=schemathesis_checks schemathesis run \
  "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --phases coverage,fuzzing \
  --max-examples 40 --max-time "$seconds" --workers 1 --request-timeout 30 \
  --seed 20261203 --no-color) || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: the server is gone (crashed); its log:" >&2
  tail -50 "$dir/serve.log" >&2
  exit 1
fi
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "schemathesis: the server no longer answers" >&2; exit 1; }
if grep -q "panicked" "$dir/serve.log"; then
  echo "schemathesis: the server panicked:" >&2
  grep -A5 "panicked" "$dir/serve.log" | head -40 >&2
  exit 1
fi
exit "$status"
