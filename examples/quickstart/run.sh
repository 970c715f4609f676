#!/usr/bin/env bash
# Runs moirai on a working example, all on loopback:
#   - two HTTP backends (127.0.0.2:8000 and 127.0.0.3:8000) behind
#     http://8080, found by name through the example hosts file;
#   - a backend on 127.0.0.1:8002 that prints the PROXY v2 header it gets,
#     behind tcp-proxy-v2://8081.
# Try, from another terminal:
#   curl -si http://127.0.0.1:8080/     (note the sticky cookie)
#   and anything sent to :8081 reaches a backend that prints the PROXY v2
#   header it got.
# Ctrl-C stops everything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
echo "building moirai and its test backends (a few minutes the first time)..."
cargo build --release -p moirai -p loadtest
state=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
# Each answers with its own address, so balancing and stickiness show.
target/release/loadtest backend --listen 127.0.0.2:8000 --kind http --body $'backend 127.0.0.2:8000\n' &
target/release/loadtest backend --listen 127.0.0.3:8000 --kind http --body $'backend 127.0.0.3:8000\n' &
target/release/loadtest backend --listen 127.0.0.1:8002 --kind echo --report-proxy &
target/release/moirai check --metadata-file "$here/metadata.json" || true
echo "moirai: http on :8080 (two backends), tcp-proxy-v2 on :8081; edit $here/metadata.json to reconfigure live"
target/release/moirai run --metadata-file "$here/metadata.json" --hosts-file "$here/hosts" \
  --state-dir "$state" "$@"
