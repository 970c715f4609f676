#!/usr/bin/env bash
# Loopback comparison of moirai and HAProxy 2.6 for `http` services, until
# `loadtest compare` exists. wrk and the backend on CPU 0; the balancer (one
# worker / one thread) on CPU 1. HAProxy runs `mode http`, `option
# forwardfor`, `http-reuse safe`, as Moirai configures it.
# Needs: haproxy, wrk (Debian). Usage: benches/http_vs_haproxy.sh [SECONDS]
set -euo pipefail
secs=${1:-5}
cd "$(dirname "$0")/.."
cargo build --release -q -p moirai -p loadtest
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

taskset -c 0 target/release/loadtest backend --listen 127.0.0.1:25402 --kind http --body-size 64 2>/dev/null &
cat > "$tmp/md.json" <<JSON
{"cloud.tritoncompute:loadbalancer":"true",
 "cloud.tritoncompute:portmap":"http://25412:127.0.0.1:25402"}
JSON
taskset -c 1 target/release/moirai run --metadata-file "$tmp/md.json" --state-dir "$tmp/state" \
  --workers 1 --log-level warn &
cat > "$tmp/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option forwardfor
  http-reuse safe
  timeout connect 2s
  timeout client 55s
  timeout server 120s
frontend http
  bind 127.0.0.1:25422
  default_backend web
backend web
  server s 127.0.0.1:25402
CFG
taskset -c 1 haproxy -db -f "$tmp/haproxy.cfg" >/dev/null 2>&1 &
sleep 1

proc_cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
mpid=$(pgrep -n -f "moirai run --metadata-file $tmp")
hpid=$(pgrep -n -f "haproxy -db -f $tmp")

# Prints "REQ_PER_S CPU_US_PER_REQ" for one wrk run against PORT.
run() { # pid port wrk-args...
  local pid=$1 port=$2; shift 2
  local c0 c1 rps
  c0=$(proc_cpu "$pid")
  rps=$(taskset -c 0 wrk -t1 -c50 -d"${secs}s" "$@" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
  c1=$(proc_cpu "$pid")
  python3 -c "print(f'{float($rps):.0f} {($c1-$c0)/$hz*1e6/(float($rps)*$secs):.1f}')"
}
echo "| system | keep-alive req/s | CPU µs/req | client Connection: close req/s | CPU µs/req |"
echo "|---|---|---|---|---|"
for round in 1 2; do
  for sys in moirai haproxy; do
    if [ $sys = moirai ]; then pid=$mpid port=25412; else pid=$hpid port=25422; fi
    read -r ka kacpu <<<"$(run "$pid" $port)"
    read -r cl clcpu <<<"$(run "$pid" $port -H 'Connection: close')"
    echo "| $sys | $ka | $kacpu | $cl | $clcpu |"
  done
done
