#!/usr/bin/env bash
# Instructions per HTTP/2 request of one moirai worker, counted by
# callgrind: the same number run after run, where CPU time on this shared
# VM moves by ±20% (docs/BENCHMARKS.md, "Instructions per request").
# h2load (prior-knowledge h2c, 10 connections × 10 streams) through an
# `http` service to the loadtest backend; warmed up, then counters zeroed,
# N requests, counters dumped. The kernel's share is not counted: pair
# the figure with `loadtest compare` for that.
# Needs: valgrind, nghttp2-client (Debian).
# With `h1` as the third argument, the same count for HTTP/1.1
# keep-alive (`h2load --h1 -c 10`, one request at a time per connection);
# with `tls`, that load over TLS through an `https-http` service (its
# self-signed certificate; the handshakes happen in the warm-up, before
# the counters are zeroed); with `close`, one HTTP/1.1 request per
# connection (`loadtest run --scenario http-close`, 10 connections at a
# time, for REQUESTS/1000 seconds: the count is what it served, so the
# first argument sets the length, not the number); with `handshake`, the
# same over TLS (`--scenario tls-handshake`: a full handshake, one request
# and the close, each).
# With CG_OUT set, the callgrind profile is kept there, for
# `callgrind_annotate --tree=caller` and the like.
# Usage: benches/callgrind_h2.sh [REQUESTS] [MOIRAI-BINARY] [h2|h1|tls|close|handshake]
set -euo pipefail
n=${1:-20000}
cd "$(dirname "$0")/.."
cargo build --release -q -p moirai -p loadtest
bin=${2:-target/release/moirai}
kind=http scheme=http
case ${3:-h2} in
  h2) load=(-c 10 -m 10) ;;
  h1) load=(--h1 -c 10 -m 1) ;;
  tls) load=(--h1 -c 10 -m 1) kind=https-http scheme=https ;;
  close) load=() scenario=http-close ;;
  handshake) load=() scenario=tls-handshake kind=https-http scheme=https ;;
  *) echo "protocol: h2, h1, tls, close or handshake" >&2; exit 2 ;;
esac
url=$scheme://127.0.0.1:25512/
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

target/release/loadtest backend --listen 127.0.0.1:25502 --kind http --body-size 64 2>/dev/null &
cat > "$tmp/md.json" <<JSON
{"cloud.tritoncompute:loadbalancer":"true",
 "cloud.tritoncompute:portmap":"$kind://25512:127.0.0.1:25502"}
JSON
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
  "$bin" run --metadata-file "$tmp/md.json" --state-dir "$tmp/state" \
  --workers 1 --log-level error 2>"$tmp/valgrind.log" &
vg=$!
for _ in $(seq 120); do
  code=$(curl -sk -o /dev/null -w '%{http_code}' "$url" || true)
  [ "$code" = 200 ] && break
  sleep 0.5
done
[ "$code" = 200 ] || { echo "moirai did not serve" >&2; exit 1; }
if [ -n "${scenario:-}" ]; then
  run() {
    target/release/loadtest run --target 127.0.0.1:25512 --scenario "$scenario" \
      --connections 10 --duration "$1" --json "$tmp/run.json" >/dev/null
  }
  run 2s
  callgrind_control -z "$vg" >/dev/null 2>&1
  run "$((n / 1000))s"
  callgrind_control -d "$vg" >/dev/null 2>&1
  n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$tmp/run.json")
  echo "requests: $n"
else
  h2load -n 2000 "${load[@]}" "$url" >/dev/null
  callgrind_control -z "$vg" >/dev/null 2>&1
  h2load -n "$n" "${load[@]}" "$url" | grep -E '^(requests|status codes):'
  callgrind_control -d "$vg" >/dev/null 2>&1
fi
sleep 1
total=$(callgrind_annotate "$tmp/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "instructions per request: $((total / n)) ($total over $n requests)"
[ -z "${CG_OUT:-}" ] || cp "$tmp/cg.out.1" "$CG_OUT"
# The heaviest lines by self cost (the thread's entry points, which
# include everything, left out).
callgrind_annotate --auto=no --threshold=100 "$tmp/cg.out.1" 2>/dev/null |
  sed -n '/file:function/,$p' |
  grep -v -e 'clone.S' -e 'start_thread' -e 'thread_start' -e 'call_once' -e '__rust_begin_short_backtrace' |
  head -30
