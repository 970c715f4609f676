//! `haproxy_server_*`: one server `rsN` per backend address, by sorted
//! address, in backend `beN`.

use super::{
    codes, count, is_http, one_hot, seconds_since, server_state, set, zero_gauges, zeros,
    CHECK_STATES, SERVER_STATES,
};
use crate::metrics::names;
use crate::metrics::view::{BackendView, ServiceView};

/// Records backend `k` (from 0) of service `i`.
pub fn record(i: usize, k: usize, s: &ServiceView<'_>, b: &BackendView<'_>) {
    let t = b.stats.totals();
    let sv = [
        ("proxy", format!("be{i}")),
        ("server", format!("rs{}", k + 1)),
    ];
    one_hot(
        names::HA_SERVER_STATUS,
        &sv,
        &SERVER_STATES,
        Some(server_state(b.up)),
    );
    one_hot(
        names::HA_SERVER_CHECK_STATUS,
        &sv,
        &CHECK_STATES,
        b.check_state,
    );
    if let Some(d) = b.check_latency {
        set(names::HA_SERVER_CHECK_DURATION, &sv, d.as_secs_f64());
    }
    count(names::HA_SERVER_CHECK_FAILURES, &sv, b.checks.1);
    // Moirai starts a backend down and HAProxy a server up, so every
    // second change of moirai's is a fall from up to down.
    count(names::HA_SERVER_CHECK_UP_DOWN, &sv, b.transitions / 2);
    if let Some(since) = b.since.and_then(|t| t.elapsed().ok()) {
        set(
            names::HA_SERVER_CHECK_LAST_CHANGE_SECONDS,
            &sv,
            since.as_secs() as f64,
        );
    }
    count(names::HA_SERVER_DOWNTIME_SECONDS, &sv, b.downtime.as_secs());
    set(names::HA_SERVER_WEIGHT, &sv, f64::from(b.weight));
    set(names::HA_SERVER_UWEIGHT, &sv, f64::from(b.weight));

    set(names::HA_SERVER_CURRENT_SESSIONS, &sv, b.active as f64);
    set(
        names::HA_SERVER_USED_CONNECTIONS_CURRENT,
        &sv,
        b.active as f64,
    );
    count(names::HA_SERVER_SESSIONS, &sv, t.opened);
    count(names::HA_SERVER_BYTES_IN, &sv, t.bytes_in);
    count(names::HA_SERVER_BYTES_OUT, &sv, t.bytes_out);
    count(names::HA_SERVER_CONNECTION_ERRORS, &sv, t.connect_errors);
    count(names::HA_SERVER_RETRY_WARNINGS, &sv, t.retries);
    count(names::HA_SERVER_REDISPATCH_WARNINGS, &sv, t.redispatches);
    count(names::HA_SERVER_LOADBALANCED, &sv, t.balanced);
    count(names::HA_SERVER_CLIENT_ABORTS, &sv, t.client_aborts);
    count(names::HA_SERVER_SERVER_ABORTS, &sv, t.server_aborts);
    count(
        names::HA_SERVER_CONNECTION_ATTEMPTS,
        &sv,
        t.opened + t.connect_errors,
    );
    count(names::HA_SERVER_CONNECTION_REUSES, &sv, t.reuses);
    set(
        names::HA_SERVER_LAST_SESSION_SECONDS,
        &sv,
        seconds_since(t.last_session),
    );
    set(
        names::HA_SERVER_MAX_CONNECT_TIME_SECONDS,
        &sv,
        t.max_connect_us as f64 / 1e6,
    );
    set(
        names::HA_SERVER_MAX_RESPONSE_TIME_SECONDS,
        &sv,
        t.max_response_us as f64 / 1e6,
    );
    // No per-server maxconn, maxqueue or slowstart: HAProxy says NaN.
    for n in [
        names::HA_SERVER_LIMIT_SESSIONS,
        names::HA_SERVER_QUEUE_LIMIT,
        names::HA_SERVER_CURRENT_THROTTLE,
    ] {
        set(n, &sv, f64::NAN);
    }
    // No queue, no ACL, no header rewrite that can fail: 0, as HAProxy.
    zero_gauges(
        &[
            names::HA_SERVER_CURRENT_QUEUE,
            names::HA_SERVER_MAX_QUEUE,
            names::HA_SERVER_QUEUE_TIME_AVERAGE_SECONDS,
            names::HA_SERVER_MAX_QUEUE_TIME_SECONDS,
        ],
        &sv,
    );
    zeros(
        &[
            names::HA_SERVER_RESPONSES_DENIED,
            names::HA_SERVER_FAILED_HEADER_REWRITING,
        ],
        &sv,
    );
    if is_http(s) {
        codes(names::HA_SERVER_HTTP_RESPONSES, &sv, t.responses);
    }
}
