#!/bin/sh
# Run tests/h2/hostile.py against moirai and HAProxy 2.6 side by side, on
# loopback: one loadtest backend per balancer (same binary, same
# arguments: 100 000-byte responses), moirai with an h2c (`http`) and a TLS
# (`https-http`) service, HAProxy with the same two frontends
# (haproxy-hostile.cfg.in). Writes OUTDIR/{moirai,haproxy}-{h2c,tls}.json
# and OUTDIR/table.md, stops everything it started.
#
#   tests/h2/run-hostile.sh [OUTDIR] [hostile.py options, e.g. --slow --only X]
#
# Env: MOIRAI (default /tmp/hostile/moirai: a copy of target/debug/moirai),
# LOADTEST (default /tmp/hostile/loadtest), HAPROXY (default
# /usr/sbin/haproxy), PYTHON (default /usr/bin/python3), TLS=0 to skip the
# TLS runs.
set -eu

MOIRAI=${MOIRAI:-/tmp/hostile/moirai}
LOADTEST=${LOADTEST:-/tmp/hostile/loadtest}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
PYTHON=${PYTHON:-/usr/bin/python3}
TLS=${TLS:-1}
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${TMPDIR:-/tmp}/hostile-results}
[ $# -gt 0 ] && shift
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hostile.XXXXXX")
pids=

cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_ports() {
    i=0
    until "$PYTHON" - "$@" <<'PY' 2>/dev/null
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=0.5).close()
PY
    do
        i=$((i + 1))
        if [ "$i" -ge 100 ]; then
            echo "ports $* did not open" >&2
            return 1
        fi
        sleep 0.1
    done
}

BE_M=$(free_port); BE_H=$(free_port)
M_H2C=$(free_port); M_TLS=$(free_port)
H_H2C=$(free_port); H_TLS=$(free_port)

"$LOADTEST" backend --listen 127.0.0.1:$BE_M --kind http --body-size 100000 \
    >"$tmp/backend-moirai.log" 2>&1 &
pids="$pids $!"
"$LOADTEST" backend --listen 127.0.0.1:$BE_H --kind http --body-size 100000 \
    >"$tmp/backend-haproxy.log" 2>&1 &
pids="$pids $!"
wait_ports $BE_M $BE_H

# moirai: an h2c service and a TLS one (its own self-signed certificate).
mkdir -p "$tmp/state"
printf '{"cloud.tritoncompute:loadbalancer":"true","cloud.tritoncompute:portmap":"http://%s:127.0.0.1:%s,https-http://%s:127.0.0.1:%s"}\n' \
    $M_H2C $BE_M $M_TLS $BE_M > "$tmp/md.json"
"$MOIRAI" run --metadata-file "$tmp/md.json" --workers 1 \
    --state-dir "$tmp/state" >"$out/moirai.log" 2>&1 &
mpid=$!
pids="$pids $mpid"

# HAProxy.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" > "$tmp/site.pem"
sed -e "s|@H2C_PORT@|$H_H2C|g" -e "s|@TLS_PORT@|$H_TLS|g" \
    -e "s|@PEM@|$tmp/site.pem|g" -e "s|@BACKEND@|127.0.0.1:$BE_H|g" \
    "$here/haproxy-hostile.cfg.in" > "$tmp/haproxy.cfg"
"$HAPROXY" -c -q -f "$tmp/haproxy.cfg"
"$HAPROXY" -db -f "$tmp/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
hpid=$!
pids="$pids $hpid"

wait_ports $M_H2C $M_TLS $H_H2C $H_TLS
sleep 1.5   # moirai's first health checks

"$MOIRAI" --version 2>/dev/null | head -n 1 || true
"$HAPROXY" -v | head -n 1
run() {     # name port pid backend-port [--tls]
    name=$1; port=$2; pid=$3; bport=$4; shift 4
    echo "== $name on 127.0.0.1:$port (pid $pid)"
    timeout 900 "$PYTHON" "$here/hostile.py" 127.0.0.1 "$port" --pid "$pid" \
        --backend-port "$bport" --json "$out/$name.json" "$@"
}
run moirai-h2c $M_H2C $mpid $BE_M "$@"
run haproxy-h2c $H_H2C $hpid $BE_H "$@"
if [ "$TLS" = 1 ]; then
    run moirai-tls $M_TLS $mpid $BE_M --tls "$@"
    run haproxy-tls $H_TLS $hpid $BE_H --tls "$@"
fi
"$PYTHON" "$here/hostile.py" compare "$out/moirai-h2c.json" \
    "$out/haproxy-h2c.json" > "$out/table.md"
if [ "$TLS" = 1 ]; then
    "$PYTHON" "$here/hostile.py" compare "$out/moirai-tls.json" \
        "$out/haproxy-tls.json" > "$out/table-tls.md"
fi
echo "JSON and tables in $out"
