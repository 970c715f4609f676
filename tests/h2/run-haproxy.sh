#!/bin/sh
# Start HAProxy on loopback (h2c and TLS frontends answering 200 to any
# request), run tests/h2/conformance.py against both, stop HAProxy.
#
#   tests/h2/run-haproxy.sh [OUTDIR]
#
# OUTDIR (default: $TMPDIR/h2conf-results) receives haproxy-h2c.json and haproxy-tls.json.
# Env: HAPROXY (default /usr/sbin/haproxy), PYTHON (default /usr/bin/python3),
# H2C_PORT / TLS_PORT (default: free ports picked by the kernel).
set -eu

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
PYTHON=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/h2conf.XXXXXX")
out=${1:-${TMPDIR:-/tmp}/h2conf-results}
mkdir -p "$out"
hapid=

cleanup() {
    if [ -n "$hapid" ]; then
        kill "$hapid" 2>/dev/null || true
        wait "$hapid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
H2C_PORT=${H2C_PORT:-$(free_port)}
TLS_PORT=${TLS_PORT:-$(free_port)}

# Self-signed certificate, valid one day, for the TLS frontend.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" > "$tmp/site.pem"

sed -e "s|@H2C_PORT@|$H2C_PORT|g" -e "s|@TLS_PORT@|$TLS_PORT|g" \
    -e "s|@PEM@|$tmp/site.pem|g" "$here/haproxy.cfg.in" > "$tmp/haproxy.cfg"
"$HAPROXY" -c -q -f "$tmp/haproxy.cfg"
"$HAPROXY" -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
hapid=$!

# Wait (at most ~5 s) for both listeners.
i=0
until "$PYTHON" - "$H2C_PORT" "$TLS_PORT" <<'PY' 2>/dev/null
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=0.5).close()
PY
do
    i=$((i + 1))
    if [ "$i" -ge 50 ] || ! kill -0 "$hapid" 2>/dev/null; then
        echo "haproxy did not start:" >&2
        cat "$tmp/haproxy.log" >&2
        exit 1
    fi
    sleep 0.1
done

"$HAPROXY" -v | head -n 1
echo "== h2c (prior knowledge) on 127.0.0.1:$H2C_PORT"
timeout 120 "$PYTHON" "$here/conformance.py" 127.0.0.1 "$H2C_PORT" \
    --json "$out/haproxy-h2c.json"
echo "== h2 over TLS on 127.0.0.1:$TLS_PORT"
timeout 120 "$PYTHON" "$here/conformance.py" 127.0.0.1 "$TLS_PORT" --tls \
    --json "$out/haproxy-tls.json"
echo "JSON results in $out"
