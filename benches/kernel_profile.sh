#!/usr/bin/env bash
# Where the kernel's time goes for moirai and for HAProxy under the same
# load: one moirai worker and one HAProxy thread, each pinned to CPU 1 in
# turn, the backend and the load generator on CPU 0, uncapped. For each
# balancer: the CPU it spent per request (user, system, from
# /proc/PID/stat), its syscalls per request (tracepoints on the serving
# thread: this VM has no hardware counters, tracepoints work) and its
# heaviest kernel symbols (perf record -e cpu-clock on that thread).
# docs/BENCHMARKS.md, "Where the kernel time goes", reads these.
# Uncapped, the balancer with time to spare sleeps in epoll_wait more
# often and pays for the wake-ups: CAP=0.4 caps each balancer at 0.4 of
# a CPU (a cgroup of its own), as `loadtest compare --cpu-quota 0.4`.
# Needs: perf (linux-perf), haproxy (Debian).
# Usage: [CAP=0.4] benches/kernel_profile.sh [SCENARIO] [SECONDS] [MOIRAI-BINARY]
#   SCENARIO: http (default), http-close or tcp-echo.
set -euo pipefail
scenario=${1:-http}
secs=${2:-8}
cd "$(dirname "$0")/.."
cargo build --release -q -p moirai -p loadtest
bin=${3:-target/release/moirai}
lt=target/release/loadtest
tmp=$(mktemp -d)
groups=()
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  sleep 0.5
  for g in "${groups[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Caps process $1 at $CAP of a CPU in a cgroup named $2 (v2 or v1).
cap() {
  [ -n "${CAP:-}" ] || return 0
  local quota
  quota=$(python3 -c "print(round(${CAP} * 100000))")
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    local g=/sys/fs/cgroup/$2
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$g"; echo "$quota 100000" > "$g/cpu.max"
  else
    local g=/sys/fs/cgroup/cpu/$2
    mkdir -p "$g"; echo 100000 > "$g/cpu.cfs_period_us"; echo "$quota" > "$g/cpu.cfs_quota_us"
  fi
  echo "$1" > "$g/cgroup.procs"
  groups+=("$g")
}

case $scenario in
  http|http-close) backend_kind=http; kind=http; mode=http ;;
  tcp-echo) backend_kind=echo; kind=tcp; mode=tcp ;;
  *) echo "scenario: http, http-close or tcp-echo" >&2; exit 2 ;;
esac
b=25802; m=25812; h=25822
taskset -c 0 "$lt" backend --listen 127.0.0.1:$b --kind $backend_kind --body-size 64 \
  >/dev/null 2>&1 &
cat > "$tmp/md.json" <<JSON
{"cloud.tritoncompute:loadbalancer":"true",
 "cloud.tritoncompute:portmap":"$kind://$m:127.0.0.1:$b"}
JSON
taskset -c 1 "$bin" run --metadata-file "$tmp/md.json" --state-dir "$tmp/state" \
  --workers 1 --log-level error >/dev/null 2>&1 &
moirai=$!
http_opts=""
cookie=""
if [ $mode = http ]; then
  http_opts=$'  option forwardfor\n  http-reuse safe'
  cookie=$'  cookie CLOUD-TRITONCOMPUTE-RS insert indirect nocache dynamic\n  dynamic-cookie-key loadtest'
fi
# As loadtest compare configures it (loadtest/src/launch.rs).
cat > "$tmp/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 8000
  tune.bufsize 16384
defaults
  mode $mode
$http_opts
  balance leastconn
  retries 1
  option redispatch
  timeout connect 2s
  timeout client 55s
  timeout server 120s
frontend fe
  bind 127.0.0.1:$h
  default_backend be
backend be
$cookie
  server s1 127.0.0.1:$b
CFG
taskset -c 1 haproxy -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 &
haproxy=$!
cap $moirai "kernel-profile-$$-moirai"
cap $haproxy "kernel-profile-$$-haproxy"
for port in $m $h; do
  for _ in $(seq 60); do
    if [ $mode = http ]; then
      [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/ || true)" = 200 ] && break
    else
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    fi
    sleep 0.5
  done
done
sleep 1

# The thread that serves: moirai's worker, HAProxy's only thread.
thread_of() {
  local pid=$1 want=$2
  for t in /proc/"$pid"/task/*; do
    if [ "$(cat "$t/comm")" = "$want" ]; then basename "$t"; return; fi
  done
  echo "$pid"
}
# utime and stime of a thread, in clock ticks.
ticks() { awk '{print $14, $15}' "/proc/$1/task/$2/stat"; }

for sys in moirai haproxy; do
  if [ $sys = moirai ]; then pid=$moirai port=$m tid=$(thread_of $moirai moirai-worker-0)
  else pid=$haproxy port=$h tid=$haproxy; fi
  # One run for the CPU and the profile, one for the syscalls (the
  # tracepoints cost time of their own).
  read -r u0 s0 < <(ticks "$pid" "$tid")
  "$lt" run --target 127.0.0.1:$port --scenario "$scenario" --duration "${secs}s" \
    --json "$tmp/$sys-run.json" >/dev/null 2>&1 &
  load=$!
  sleep 1
  perf record -q -e cpu-clock -g -t "$tid" -o "$tmp/$sys.perf" -- sleep $((secs - 2)) \
    >/dev/null 2>&1
  wait $load
  read -r u1 s1 < <(ticks "$pid" "$tid")
  n=$(python3 -c "import json;print(json.load(open('$tmp/$sys-run.json'))['requests'])")
  hz=$(getconf CLK_TCK)
  echo "== $sys ($scenario): $n requests"
  python3 -c "n=$n; hz=$hz; u=($u1-$u0)/hz*1e6/n; s=($s1-$s0)/hz*1e6/n
print(f'CPU per request: {u+s:.2f} us (user {u:.2f}, kernel {s:.2f})')"
  "$lt" run --target 127.0.0.1:$port --scenario "$scenario" --duration "${secs}s" \
    --json "$tmp/$sys-run2.json" >/dev/null 2>&1 &
  load=$!
  sleep 1
  perf stat -x, -e 'syscalls:sys_enter_*' -t "$tid" -o "$tmp/$sys.stat" -- sleep $((secs - 2)) \
    >/dev/null 2>&1
  wait $load
  n2=$(python3 -c "import json;print(json.load(open('$tmp/$sys-run2.json'))['requests'])")
  # Requests in the counted window, pro rata.
  python3 - "$tmp/$sys.stat" "$n2" "$secs" <<'PY'
import sys
path, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = n * (secs - 2) / secs
rows = []
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].isdigit() and int(f[0]) > 0:
        rows.append((int(f[0]) / per, f[2].split(":sys_enter_")[-1]))
print("syscalls per request: " + ", ".join(f"{c:.2f} {name}" for c, name in sorted(rows, reverse=True)))
PY
  echo "kernel symbols (self, share of the thread's samples):"
  perf report -i "$tmp/$sys.perf" --no-children --sort sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | grep '\[k\]' | head -25 || true
done
