#!/usr/bin/env bash
# Hit vs miss latency of the fast compositor for the demo sofa at 1024 px.
#
#   scripts/bench-hit-miss.sh [seconds-of-wrk]
#   BINARY=/path/to/other/layercake scripts/bench-hit-miss.sh   # a reference build
#
# Builds the release binary (unless BINARY names one; not LAYERCAKE_*, which is configuration), starts it on 127.0.0.1 with a fresh data dir,
# and measures, per camera view:
#   cold miss  - nothing cached: every layer rendered, composed, encoded;
#   layer hit  - layers in memory, a new output size: resize + encode of the kept stack;
#   hit        - the same URL again: served from the memory tier.
# Then wrk hammers one hit URL for a few seconds (1 thread, 8 connections).
# Everything is on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
bin=${BINARY:-}
if [ -z "$bin" ]; then cargo build --release --quiet; bin=./target/release/layercake; fi
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/api/fast-compositor/healthcheck" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/api/fast-compositor/healthcheck" >/dev/null || { echo "the server did not start:"; cat "$data/log"; exit 1; }

sofa=03a29397-2265-40cd-8c45-41a1c4e12574
cfg='%7B%22Body%22%3A%22Navy%22%2C%22Pillows%22%3A%22Teal%22%2C%22Legs%22%3A%22Brass%20Cone%22%7D'
t() { curl -s -o /dev/null -w '%{time_total}' "$1"; }
printf '%-6s %12s %12s %12s\n' view cold_miss_ms layer_hit_ms hit_ms
for view in 0 1 2 3; do
  base="http://127.0.0.1:$port/api/fast-compositor?assetId=$sofa&configuration=$cfg&stageConfiguration=%7B%22Camera%22%3A$view%7D&format=webp"
  cold=$(t "$base&width=1024")
  warm=$(t "$base&width=1023")
  hit=$(t "$base&width=1024")
  awk -v v=$view -v c=$cold -v w=$warm -v h=$hit 'BEGIN{printf "%-6s %12.1f %12.1f %12.2f\n", v, c*1000, w*1000, h*1000}'
done
if command -v wrk >/dev/null; then
  echo "wrk, ${secs}s on one hit URL:"
  wrk -t1 -c8 -d"${secs}s" --latency "http://127.0.0.1:$port/api/fast-compositor?assetId=$sofa&configuration=$cfg&format=webp&width=1024" | grep -E 'Latency|50%|99%|Requests/sec'
fi
