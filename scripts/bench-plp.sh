#!/usr/bin/env bash
# The first load of the product-listing page in headless Chromium, each
# way on a fresh data dir with the release binary. Loopback only; stops by
# itself.
#
#   scripts/bench-plp.sh        the SVG demo (built in), three ways:
#     cold       - nothing cached: the page's images render their layers;
#     layers     - after `layercake prefetch --asset <sofa> --all --views front`;
#     composites - after that plus `--composites --sizes 320 --formats webp`
#                  (the width and format Chromium picks for a tile here).
#   scripts/bench-plp.sh --3d   the 3D demo (config/blender.toml, Blender
#                  on PATH), two ways: cold, and after `prefetch --all
#                  --where Body=Slate --views front` (the listing's 36
#                  tiles are the default body in every other option).
#                  SCALE=50 renders at half the canvas (a quarter of the
#                  pixels) to make the cold run shorter; default 100.
#
# "first load" = every tile's image loaded: tests/browser/check.mjs for the
# SVG demo (which also checks swatches and the carousel), and for the 3D
# demo tests/browser/three_d.mjs's listing phase, which waits through the
# placeholders and retries of images still rendering.
#
# Needs /usr/bin/chromium and `npm ci --prefix tests/browser`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=./target/release/layercake
mode=svg
[ "${1:-}" = "--3d" ] && mode=3d
if [ "$mode" = 3d ]; then
  asset=9c1f4e2a-7d3b-4a8e-b5c6-2e0f1a3d4b5c
  conf=$(mktemp --suffix=.toml)
  # Its paths are relative to its folder: made absolute for the copy.
  sed -e "s/^scale = 100/scale = ${SCALE:-100}/" -e "s|= \"\.\./|= \"$PWD/|" config/blender.toml > "$conf"
  trap 'rm -f "$conf"' EXIT
  common=(--config "$conf")
else
  asset=03a29397-2265-40cd-8c45-41a1c4e12574
  common=()
fi
run() { # name, prefetch args...
  local name=$1; shift
  local data; data=$(mktemp -d)
  local t0 t1 prefetch_s=0
  if [ $# -gt 0 ]; then
    t0=$(date +%s.%N)
    "$bin" prefetch "${common[@]}" --data-dir "$data" "$@" >"$data/prefetch.log" 2>&1
    t1=$(date +%s.%N)
    prefetch_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  fi
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve "${common[@]}" --listen "127.0.0.1:$port" --data-dir "$data" >"$data/log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local report
  if [ "$mode" = 3d ]; then
    report=$(LOAD_MS=3600000 node tests/browser/three_d.mjs "http://127.0.0.1:$port" "target/browser/bench-3d-$name" "$asset" listing | tail -1)
  else
    report=$(node tests/browser/check.mjs "http://127.0.0.1:$port" "target/browser/bench-$name" | tail -1)
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-11s prefetch %7ss   first PLP load %s\n' "$name" "$prefetch_s" \
    "$(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin)["plp"]; print(r["ms"], "ms,", r["tiles"], "tiles,", r.get("placeholders", 0), "placeholders")')"
  rm -rf "$data"
}
if [ "$mode" = 3d ]; then
  run cold
  run layers --asset "$asset" --all --where Body=Slate --views front
else
  run cold
  run layers --asset "$asset" --all --views front
  run composites --asset "$asset" --all --views front --composites --sizes 320 --formats webp
fi
