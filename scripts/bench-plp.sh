#!/usr/bin/env bash
# The first load of the product-listing page in headless Chromium, three
# ways, each on a fresh data dir with the release binary:
#   cold      - nothing cached: the page's images render their layers;
#   layers    - after `layercake prefetch --asset <sofa> --all --views front`;
#   composites- after that plus `--composites --sizes 320 --formats webp`
#               (the width and format Chromium picks for a tile here).
# "first load" = every tile's image loaded (tests/browser/check.mjs, which
# also checks swatches and the carousel). Loopback only; stops by itself.
#
#   scripts/bench-plp.sh        (needs /usr/bin/chromium and npm ci --prefix tests/browser)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=./target/release/layercake
sofa=03a29397-2265-40cd-8c45-41a1c4e12574
run() { # name, prefetch args...
  local name=$1; shift
  local data; data=$(mktemp -d)
  local t0 t1 prefetch_s=0
  if [ $# -gt 0 ]; then
    t0=$(date +%s.%N)
    "$bin" prefetch --data-dir "$data" "$@" >"$data/prefetch.log" 2>&1
    t1=$(date +%s.%N)
    prefetch_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  fi
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local report; report=$(node tests/browser/check.mjs "http://127.0.0.1:$port" "target/browser/bench-$name" | tail -1)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-11s prefetch %6ss   first PLP load %s\n' "$name" "$prefetch_s" \
    "$(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin)["plp"]; print(r["ms"], "ms,", r["tiles"], "tiles")')"
  rm -rf "$data"
}
run cold
run layers --asset "$sofa" --all --views front
run composites --asset "$sofa" --all --views front --composites --sizes 320 --formats webp
