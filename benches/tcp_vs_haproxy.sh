#!/usr/bin/env bash
# Loopback comparison of moirai and HAProxy in tcp mode, until `loadtest
# compare` exists. Load generator and backends on CPU 0, the balancer (one
# worker / one thread) on CPU 1. Needs: haproxy, wrk, iperf3 (Debian).
# Usage: benches/tcp_vs_haproxy.sh [SECONDS]
set -euo pipefail
secs=${1:-5}
cd "$(dirname "$0")/.."
cargo build --release -q -p moirai -p loadtest
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

taskset -c 0 iperf3 -s -p 25201 -D --pidfile "$tmp/iperf.pid"
taskset -c 0 target/release/loadtest backend --listen 127.0.0.1:25202 --kind http --body-size 64 2>/dev/null &

cat > "$tmp/md.json" <<JSON
{"cloud.tritoncompute:loadbalancer":"true",
 "cloud.tritoncompute:portmap":"tcp://25211:127.0.0.1:25201,tcp://25212:127.0.0.1:25202"}
JSON
taskset -c 1 target/release/moirai run --metadata-file "$tmp/md.json" --state-dir "$tmp/state" \
  --workers 1 --log-level warn &
cat > "$tmp/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 2s
  timeout client 55s
  timeout server 120s
frontend iperf
  bind 127.0.0.1:25221
  default_backend iperf
backend iperf
  server s 127.0.0.1:25201
frontend http
  bind 127.0.0.1:25222
  default_backend http
backend http
  server s 127.0.0.1:25202
CFG
taskset -c 1 haproxy -db -f "$tmp/haproxy.cfg" >/dev/null 2>&1 &
sleep 1

proc_cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
mpid=$(pgrep -n -f "moirai run --metadata-file $tmp")
hpid=$(pgrep -n -f "haproxy -db -f $tmp")

hz=$(getconf CLK_TCK)
# Runs a command, prints "RESULT CPU_SECONDS" with the balancer's CPU time.
with_cpu() { # pid cmd...
  local pid=$1; shift
  local c0 c1 r
  c0=$(proc_cpu "$pid"); r=$("$@"); c1=$(proc_cpu "$pid")
  echo "$r $(python3 -c "print(($c1-$c0)/$hz)")"
}
iperf() { taskset -c 0 iperf3 -c 127.0.0.1 -p "$1" -t "$secs" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))'; }
wrk_rps() { taskset -c 0 wrk -t1 -c50 -d"${secs}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
us_per_req() { python3 -c "print(round($2*1e6/($1*$secs),1))"; }

measure() { # name pid port-base
  local name=$1 pid=$2 base=$3
  read -r gbps _ <<<"$(with_cpu "$pid" iperf $((base + 1)))"
  read -r ka kacpu <<<"$(with_cpu "$pid" wrk_rps "http://127.0.0.1:$((base + 2))/")"
  read -r cl clcpu <<<"$(with_cpu "$pid" wrk_rps -H 'Connection: close' "http://127.0.0.1:$((base + 2))/")"
  echo "| $name | $gbps | $ka | $(us_per_req "$ka" "$kacpu") | $cl | $(us_per_req "$cl" "$clcpu") |"
}
echo "| system | iperf3 Gbit/s | keep-alive req/s (tcp mode) | CPU µs/req | new connections/s | CPU µs/conn |"
echo "|---|---|---|---|---|---|"
measure moirai "$mpid" 25210
measure haproxy "$hpid" 25220
ss -tanp | grep -c "moirai" >&2 || true
measure moirai "$mpid" 25210
measure haproxy "$hpid" 25220
ss -tanp | grep -c "moirai" >&2 || true
