#!/usr/bin/env bash
# Builds the release binary, then measures the hot paths beside nginx in
# one run (scripts/bench_hot_paths.py; its --help says what and how).
# Needs wrk and nginx-light (apt). Loopback only; about 5 minutes.
#
#   scripts/bench-hot-paths.sh [--baseline OLD_BINARY] [--secs 8] [--skip overload,...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
exec python3 scripts/bench_hot_paths.py --binary target/release/layercake "$@"
