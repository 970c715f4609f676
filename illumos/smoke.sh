#!/bin/bash
#
# illumos/smoke.sh: checks, in a real SmartOS zone with moirai installed
# and enabled, the facts the test suite cannot check on Linux: the SMF
# service, its privileges, the metadata socket (read and PUT, as dns-01
# does), the state directory, the log rotation, the control socket and
# the reconfigure command. One line per check; exit 1 if any fails.
#
#   /opt/triton/moirai/boot/smoke.sh       as root, in the load-balancer zone

set -o pipefail

PREFIX="${MOIRAI_PREFIX:-/opt/triton/moirai}"
FMRI="svc:/network/moirai:default"
STATE="$(svcprop -p config/state_dir "$FMRI" 2>/dev/null || echo /var/moirai)"
failed=0

check() {
    local what="$1"
    shift
    if out="$("$@" 2>&1)"; then
        printf 'ok    %s\n' "$what"
    else
        printf 'FAIL  %s\n      %s\n' "$what" "$(echo "$out" | head -3)"
        failed=1
    fi
}

# The service is online, and svcs -x has nothing to say about it.
check "service online" bash -c "svcs -H -o state $FMRI | grep -qx online"
check "svcs -x is quiet" bash -c "[ -z \"\$(svcs -x $FMRI)\" ]"

pid="$(pgrep -f "$PREFIX/bin/moirai run" | head -1)"
check "the daemon runs" test -n "$pid"

# Privileges: the manifest's set, nothing more (see illumos/README.md).
check "runs as root" bash -c "ps -o user= -p $pid | grep -qx ' *root'"
check "net_privaddr present" bash -c "ppriv $pid | grep -E '^ *E:' | grep -q net_privaddr"
for dropped in proc_info proc_session file_link_any file_dac_read file_dac_write proc_owner; do
    check "no $dropped" bash -c "! ppriv $pid | grep -E '^ *E:' | grep -qw $dropped"
done

# The metadata socket: owned by root, and readable through it.
socket=/.zonecontrol/metadata.sock
[ -S /native/.zonecontrol/metadata.sock ] && socket=/native/.zonecontrol/metadata.sock
check "metadata socket is root's" bash -c "[ \"\$(stat -c %U $socket 2>/dev/null || ls -l $socket | awk '{print \$3}')\" = root ]"
check "moirai check reads the metadata" bash -c "$PREFIX/bin/moirai check >/dev/null; [ \$? -ne 2 ]"

# A PUT through the same socket, as dns-01 does (a key of its own,
# removed again).
key="moirai:smoke-test"
check "metadata PUT works" bash -c "mdata-put $key ok && [ \"\$(mdata-get $key)\" = ok ] && mdata-delete $key"

# State directory and logs.
check "state directory is 0700" bash -c "ls -ld $STATE | grep -q '^drwx------'"
check "error log rotation configured" bash -c "logadm -V | grep -q /var/log/moirai/errors.log"

# The control socket and the guide's reconfigure command.
check "moirai status answers" "$PREFIX/bin/moirai" status --state-dir "$STATE"
check "reconfigure answers" /opt/triton/clb/reconfigure

exit "$failed"
