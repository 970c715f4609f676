#!/bin/bash
#
# First boot of a moirai load-balancer zone: the image runs this once (as
# Triton-Moirai's boot/setup.sh), from its own SMF service or by hand.
# It prepares the state directory, rotates the logs, imports the manifest
# and enables moirai. Running it again changes
# nothing.
#
# MOIRAI_ROOT (default empty) prefixes every path, so the layout and the
# commands it runs can be checked outside a zone (tests/it/smf.rs).

set -o errexit
set -o pipefail

ROOT="${MOIRAI_ROOT:-}"
PREFIX="$ROOT/opt/triton/moirai"
STATE="$ROOT/var/moirai"
DONE="$ROOT/var/tmp/.moirai-first-boot-done"

if [[ -f /lib/svc/share/smf_include.sh ]]; then
    # shellcheck disable=SC1091
    source /lib/svc/share/smf_include.sh
fi
: "${SMF_EXIT_OK:=0}" "${SMF_EXIT_ERR_FATAL:=95}" "${SMF_EXIT_NODAEMON:=94}"

if [[ -f "$DONE" ]]; then
    exit "$SMF_EXIT_NODAEMON"
fi

# As Moirai: an instance whose metadata does not ask for a load balancer is
# left alone, loudly.
if ! mdata-get cloud.tritoncompute:loadbalancer 2>/dev/null | grep -qiw true; then
    echo "moirai setup: cloud.tritoncompute:loadbalancer is not \"true\"; nothing to set up" >&2
    exit "$SMF_EXIT_ERR_FATAL"
fi

# The state directory (certificates, keys, the control socket): root's,
# owner only. The service runs as root with a reduced privilege set (see
# the manifest), so owner access is all it has.
mkdir -p "$STATE"
chown root:root "$STATE"
chmod 0700 "$STATE"

# Rotation of the local error and access logs (moirai writes them,
# copy-and-truncate keeps its descriptors valid; logadm rotates), as the
# HAProxy image rotated /var/log/haproxy.log.
logadm -w "$ROOT/var/log/moirai/errors.log" -C 5 -c -s 100m
logadm -w "$ROOT/var/log/moirai/access.log" -C 5 -c -s 100m

# What the configuration would run, in the first-boot log.
"$PREFIX/bin/moirai" check || true

svccfg import "$PREFIX/smf/moirai.xml"
svcadm enable moirai

mkdir -p "$(dirname "$DONE")"
touch "$DONE"
exit "$SMF_EXIT_NODAEMON"
