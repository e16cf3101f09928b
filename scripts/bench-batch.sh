#!/usr/bin/env bash
# Wall time of a batch job: every combination of the demo sofa (360
# configurations) on one view, then on all four views, on the release
# binary with a fresh data dir; then the same batch again (nothing to do).
#
#   scripts/bench-batch.sh
#   BINARY=/path/to/layercake scripts/bench-batch.sh
#
# Prints, per batch: configurations, distinct layers, tasks queued, and the
# seconds from POST /api/jobs to the job's stop. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BINARY:-}
if [ -z "$bin" ]; then cargo build --release --quiet; bin=./target/release/layercake; fi
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/api/jobs/healthcheck" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
sofa=03a29397-2265-40cd-8c45-41a1c4e12574

batch() {
  local body=$1 label=$2
  python3 - "$base" "$body" "$label" <<'PY'
import json, sys, time, urllib.request
base, body, label = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.monotonic()
req = urllib.request.Request(base + "/api/jobs", data=body.encode(), headers={"content-type": "application/json"})
job = json.load(urllib.request.urlopen(req))
while job["status"] != "stopped":
    time.sleep(0.05)
    job = json.load(urllib.request.urlopen(f"{base}/api/jobs/{job['id']}"))
    if time.monotonic() - t0 > 600:
        sys.exit("the job did not stop within 10 minutes")
p = job["parameters"]
print(f"{label:<22} configurations={p['configurations']:<4} layers={p['layers']:<4} cached={p['cached']:<4} "
      f"tasks={p['tasks']:<4} successes={job['taskResultSuccesses']:<4} failures={job['taskResultFailures']:<2} "
      f"seconds={time.monotonic() - t0:.2f}")
PY
}
batch "{\"assetId\":\"$sofa\",\"all\":true,\"stageConfigurations\":[{\"Camera\":0}]}" "all, front view"
batch "{\"assetId\":\"$sofa\",\"all\":true}" "all, every view"
batch "{\"assetId\":\"$sofa\",\"all\":true}" "all, every view, again"
