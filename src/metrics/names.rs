//! Every exported metric name, in one place, with its help text.
//!
//! Conventions (Prometheus): `moirai_` prefix, base units (seconds, bytes),
//! `_total` on counters. The `process_*` names are Prometheus's standard
//! process metrics, unprefixed, so the usual dashboards find them.
//!
//! Labels: `service` is the listen port (unique per balancer), `type` the
//! service type, `backend` the backend's `address:port`, `class` a status
//! class (`2xx`), `name` a DNS name, `key` a metadata key.
//!
//! The `haproxy_*` families are in `names/haproxy.rs`, re-exported here.

mod haproxy;

pub use haproxy::*;

/// (name, help) of one metric.
pub type Name = (&'static str, &'static str);

// ---- per service (client side) ----------------------------------------

/// Client connections accepted.
pub const SERVICE_CONNECTIONS: Name = (
    "moirai_service_connections_total",
    "Client connections accepted by the service.",
);
/// Client connections open now.
pub const SERVICE_ACTIVE: Name = (
    "moirai_service_connections_active",
    "Client connections open now.",
);
/// Whether every listener of the service is open (0: NOT LISTENING).
pub const SERVICE_LISTENING: Name = (
    "moirai_service_listening",
    "1 when the service listens on every address it should, 0 when a port cannot be bound (in use).",
);
/// Responses sent to clients, by status class (http types).
pub const SERVICE_RESPONSES: Name = (
    "moirai_service_responses_total",
    "Responses sent to clients, by status class, including moirai's own (503, 400...).",
);
/// Bytes received from clients.
pub const SERVICE_REQUEST_BYTES: Name = (
    "moirai_service_request_bytes_total",
    "Bytes received from clients.",
);
/// Bytes sent to clients.
pub const SERVICE_RESPONSE_BYTES: Name = (
    "moirai_service_response_bytes_total",
    "Bytes sent to clients.",
);
/// Client connections that found no backend to connect to.
pub const SERVICE_CONNECT_ERRORS: Name = (
    "moirai_service_connect_errors_total",
    "Client connections or requests for which every backend connect attempt failed.",
);
/// Connects retried on another backend.
pub const SERVICE_RETRIES: Name = (
    "moirai_service_retries_total",
    "Backend connects retried on another backend after a failure.",
);
/// Requests answered with a redirect to https (`redirect:`).
pub const SERVICE_REDIRECTS: Name = (
    "moirai_service_redirects_total",
    "Requests answered with a redirect to https (the redirect parameter), no backend contacted.",
);
/// Client connections that spoke HTTP/2.
pub const SERVICE_H2_CONNECTIONS: Name = (
    "moirai_service_h2_connections_total",
    "Client connections that spoke HTTP/2 (ALPN h2, or the cleartext preface).",
);
/// HTTP/2 request streams.
pub const SERVICE_H2_STREAMS: Name = (
    "moirai_service_h2_streams_total",
    "HTTP/2 request streams opened by clients.",
);
/// HTTP/2 streams reset, by side.
pub const SERVICE_H2_RESETS: Name = (
    "moirai_service_h2_resets_total",
    "HTTP/2 streams reset, by the side that sent RST_STREAM (client, or moirai).",
);
/// HTTP/2 connections ended by an error, by code.
pub const SERVICE_H2_ERRORS: Name = (
    "moirai_service_h2_connection_errors_total",
    "HTTP/2 connections ended by a protocol error or a limit, by the code of moirai's GOAWAY.",
);
/// HTTP/2 connections open now.
pub const SERVICE_H2_ACTIVE: Name = (
    "moirai_service_h2_connections",
    "HTTP/2 client connections open now.",
);
/// HTTP/2 streams open now.
pub const SERVICE_H2_STREAMS_ACTIVE: Name = (
    "moirai_service_h2_streams",
    "HTTP/2 request streams open now.",
);
/// HTTP/2 hardening limits hit, by limit.
pub const SERVICE_H2_LIMITS: Name = (
    "moirai_service_h2_limit_hits_total",
    "Times a client hit one of moirai's HTTP/2 limits (rapid reset, CONTINUATION, HPACK, floods), by limit.",
);
/// Connections ended by the client or server timeout.
pub const SERVICE_TIMEOUTS: Name = (
    "moirai_service_timeouts_total",
    "Client connections ended by the client or server idle timeout.",
);

// ---- per backend -----------------------------------------------------------

/// Connections established to the backend.
pub const BACKEND_CONNECTIONS: Name = (
    "moirai_backend_connections_total",
    "Connections established to the backend.",
);
/// Connections to the backend open now.
pub const BACKEND_ACTIVE: Name = (
    "moirai_backend_connections_active",
    "Connections to the backend open now, over all workers.",
);
/// Responses from the backend, by status class.
pub const BACKEND_RESPONSES: Name = (
    "moirai_backend_responses_total",
    "Responses received from the backend, by status class.",
);
/// Bytes sent to the backend.
pub const BACKEND_REQUEST_BYTES: Name = (
    "moirai_backend_request_bytes_total",
    "Bytes sent to the backend (request direction, injected headers included).",
);
/// Bytes received from the backend.
pub const BACKEND_RESPONSE_BYTES: Name = (
    "moirai_backend_response_bytes_total",
    "Bytes received from the backend.",
);
/// Failed connects to the backend.
pub const BACKEND_CONNECT_ERRORS: Name = (
    "moirai_backend_connect_errors_total",
    "Connects to the backend that failed or timed out.",
);
/// Retries caused by the backend.
pub const BACKEND_RETRIES: Name = (
    "moirai_backend_retries_total",
    "Connects retried elsewhere after this backend failed them.",
);
/// Server timeouts.
pub const BACKEND_TIMEOUTS: Name = (
    "moirai_backend_timeouts_total",
    "Connections ended because the backend was idle past the server timeout.",
);
/// Health state.
pub const BACKEND_UP: Name = (
    "moirai_backend_up",
    "1 if the backend passes its health checks and takes new connections, else 0.",
);
/// Latency of the last passing health check.
pub const BACKEND_CHECK_DURATION: Name = (
    "moirai_backend_health_check_duration_seconds",
    "How long the backend's latest passing health check took.",
);
/// Health checks run.
pub const BACKEND_CHECKS: Name = (
    "moirai_backend_health_checks_total",
    "Health checks run against the backend.",
);
/// Health checks failed.
pub const BACKEND_CHECK_FAILURES: Name = (
    "moirai_backend_health_check_failures_total",
    "Health checks of the backend that failed.",
);

// ---- latency (per service) ---------------------------------------------

/// Request latency histogram.
pub const REQUEST_DURATION: Name = (
    "moirai_request_duration_seconds",
    "From a request's complete head to its response's complete head (http types).",
);
/// Request latency quantiles.
pub const REQUEST_DURATION_QUANTILE: Name = (
    "moirai_request_duration_quantile_seconds",
    "Quantiles p50/p90/p99/p99.9 of moirai_request_duration_seconds since start.",
);
/// Connect latency histogram.
pub const CONNECT_DURATION: Name = (
    "moirai_connect_duration_seconds",
    "From starting a backend connect to its completion.",
);
/// Connect latency quantiles.
pub const CONNECT_DURATION_QUANTILE: Name = (
    "moirai_connect_duration_quantile_seconds",
    "Quantiles p50/p90/p99/p99.9 of moirai_connect_duration_seconds since start.",
);

// ---- control plane -------------------------------------------------------

/// The running generation.
pub const GENERATION: Name = (
    "moirai_config_generation",
    "The configuration generation the workers run.",
);
/// When it was applied.
pub const GENERATION_APPLIED: Name = (
    "moirai_config_applied_timestamp_seconds",
    "When the running generation was applied by every worker (Unix time).",
);
/// Current configuration errors.
pub const CONFIG_ERRORS: Name = (
    "moirai_config_errors",
    "Errors in the current metadata, by key.",
);
/// DNS lookups.
pub const DNS_QUERIES: Name = (
    "moirai_dns_queries_total",
    "DNS lookups of the name (A+AAAA or SRV).",
);
/// DNS lookups that failed.
pub const DNS_FAILURES: Name = (
    "moirai_dns_failures_total",
    "DNS lookups of the name that failed (timeout, SERVFAIL, garbage); the last good set was kept.",
);
/// Addresses in the last good answer.
pub const DNS_ANSWERS: Name = (
    "moirai_dns_answers",
    "Backend addresses in the name's last good answer.",
);
/// Metadata read errors.
pub const METADATA_ERRORS: Name = (
    "moirai_metadata_read_errors_total",
    "Failed reads of the metadata source.",
);
/// Syslog lines dropped.
pub const SYSLOG_DROPPED: Name = (
    "moirai_syslog_dropped_total",
    "Syslog lines dropped because the socket was full or failed.",
);
/// Syslog lines sent.
pub const SYSLOG_SENT: Name = ("moirai_syslog_sent_total", "Syslog lines sent.");

/// Certificate expiry, per name with a provided or ACME certificate.
pub const CERT_EXPIRY: Name = (
    "moirai_certificate_expiry_timestamp_seconds",
    "When the certificate served for the name expires (Unix time).",
);
/// 1 when that certificate expires within 14 days (or has), else 0.
pub const CERT_EXPIRING: Name = (
    "moirai_certificate_expiring",
    "1 when the certificate served for the name expires within 14 days or has expired, else 0.",
);
/// ACME orders started.
pub const ACME_ATTEMPTS: Name = (
    "moirai_acme_attempts_total",
    "ACME certificate orders started.",
);
/// ACME orders failed.
pub const ACME_FAILURES: Name = (
    "moirai_acme_failures_total",
    "ACME certificate orders that failed.",
);

// ---- process -----------------------------------------------------------------

/// Open descriptors.
pub const OPEN_FDS: Name = ("process_open_fds", "Open file descriptors.");
/// Descriptor limit.
pub const MAX_FDS: Name = ("process_max_fds", "The file descriptor limit.");
/// Resident memory.
pub const RSS: Name = (
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
);
/// CPU time.
pub const CPU: Name = (
    "process_cpu_seconds_total",
    "User and system CPU time spent, in seconds.",
);
/// Start time.
pub const START_TIME: Name = (
    "process_start_time_seconds",
    "When the process started (Unix time).",
);

/// Histogram buckets (seconds): 100 µs to 60 s.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Quantiles exported as gauges.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
