//! `haproxy_frontend_*`: one frontend `feN` per service, the client side.

use super::process::Limits;
use super::{codes, count, is_http, one_hot, set, zero_gauges, zeros};
use crate::metrics::names;
use crate::metrics::view::ServiceView;
use crate::proto::http1::errors::Status;

/// Records service `i`'s frontend.
pub fn record(i: usize, s: &ServiceView<'_>, limits: &Limits) {
    let t = s.stats.totals();
    let fe = [("proxy", format!("fe{i}"))];
    let state = if s.listening { "UP" } else { "DOWN" };
    one_hot(names::HA_FRONTEND_STATUS, &fe, &["DOWN", "UP"], Some(state));
    set(
        names::HA_FRONTEND_CURRENT_SESSIONS,
        &fe,
        t.opened.saturating_sub(t.closed) as f64,
    );
    // A service may take every connection the process may (HAProxy's
    // frontend maxconn defaults to the global one).
    set(
        names::HA_FRONTEND_LIMIT_SESSIONS,
        &fe,
        limits.connections as f64,
    );
    // Every accepted connection is a session: moirai has no
    // `tcp-request connection` rules that could end one before.
    count(names::HA_FRONTEND_SESSIONS, &fe, t.opened);
    count(names::HA_FRONTEND_CONNECTIONS, &fe, t.opened);
    count(names::HA_FRONTEND_BYTES_IN, &fe, t.bytes_in);
    count(names::HA_FRONTEND_BYTES_OUT, &fe, t.bytes_out);
    // HAProxy's `ereq`: requests refused before a backend saw them.
    let errors = [
        Status::BadRequest,
        Status::RequestTimeout,
        Status::HeaderTooLarge,
        Status::NotImplemented,
    ]
    .iter()
    .map(|s| t.own[s.index()])
    .sum();
    count(names::HA_FRONTEND_REQUEST_ERRORS, &fe, errors);
    // No ACL denies, no rate limit, no header rewrite that can fail
    // (moirai writes injected headers beside the client's, never into a
    // fixed reserve): HAProxy reports these as 0 for this configuration.
    zeros(
        &[
            names::HA_FRONTEND_REQUESTS_DENIED,
            names::HA_FRONTEND_RESPONSES_DENIED,
            names::HA_FRONTEND_DENIED_CONNECTIONS,
            names::HA_FRONTEND_DENIED_SESSIONS,
            names::HA_FRONTEND_FAILED_HEADER_REWRITING,
        ],
        &fe,
    );
    zero_gauges(&[names::HA_FRONTEND_LIMIT_SESSION_RATE], &fe);
    if is_http(s) {
        codes(names::HA_FRONTEND_HTTP_RESPONSES, &fe, t.responses);
        count(names::HA_FRONTEND_HTTP_REQUESTS, &fe, t.requests);
        count(names::HA_FRONTEND_INTERCEPTED_REQUESTS, &fe, t.intercepted);
        // Moirai never compresses and has no cache.
        zeros(
            &[
                names::HA_FRONTEND_HTTP_COMP_BYTES_IN,
                names::HA_FRONTEND_HTTP_COMP_BYTES_OUT,
                names::HA_FRONTEND_HTTP_COMP_BYTES_BYPASSED,
                names::HA_FRONTEND_HTTP_COMP_RESPONSES,
                names::HA_FRONTEND_HTTP_CACHE_LOOKUPS,
                names::HA_FRONTEND_HTTP_CACHE_HITS,
            ],
            &fe,
        );
    }
}
