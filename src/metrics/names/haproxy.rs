//! The `haproxy_*` families' names: HAProxy's own exporter, as
//! Triton-Moirai serves it. Part of [`super`] (re-exported there, so every
//! name is `names::X`); apart only because the families are long and
//! follow HAProxy's names, not moirai's conventions.

use super::Name;

// ---- HAProxy's own exporter, as Triton-Moirai serves it ----------------
//
// The same names, types and labels as HAProxy 2.6's `prometheus-exporter`
// gives for Moirai's configuration: frontends `fe0`.., backends `be0`..
// (label `proxy`, in portmap order), servers `rs1`.. (label `server`, the
// backends' sorted addresses), so existing dashboards and alerts keep
// working. Checked against a running HAProxy in `tests/it/metrics.rs`.

/// Frontend state, one-hot over `state` (UP, DOWN).
pub const HA_FRONTEND_STATUS: Name = (
    "haproxy_frontend_status",
    "Current status of the service, per state label value.",
);
/// Client connections open now.
pub const HA_FRONTEND_CURRENT_SESSIONS: Name = (
    "haproxy_frontend_current_sessions",
    "Number of current sessions on the frontend.",
);
/// Client connections accepted.
pub const HA_FRONTEND_SESSIONS: Name = (
    "haproxy_frontend_sessions_total",
    "Total number of sessions on the frontend.",
);
/// Client connections accepted (HAProxy counts them apart from sessions).
pub const HA_FRONTEND_CONNECTIONS: Name = (
    "haproxy_frontend_connections_total",
    "Total number of new connections.",
);
/// Bytes from clients.
pub const HA_FRONTEND_BYTES_IN: Name = (
    "haproxy_frontend_bytes_in_total",
    "Total number of request bytes since process started.",
);
/// Bytes to clients.
pub const HA_FRONTEND_BYTES_OUT: Name = (
    "haproxy_frontend_bytes_out_total",
    "Total number of response bytes since process started.",
);
/// Responses to clients by `code` class (1xx..5xx, other).
pub const HA_FRONTEND_HTTP_RESPONSES: Name = (
    "haproxy_frontend_http_responses_total",
    "Total number of HTTP responses with status 100-199 returned by this object.",
);
/// Backend state, one-hot over `state` (UP, DOWN).
pub const HA_BACKEND_STATUS: Name = (
    "haproxy_backend_status",
    "Current status of the service, per state label value.",
);
/// Backend connections in use now.
pub const HA_BACKEND_CURRENT_SESSIONS: Name = (
    "haproxy_backend_current_sessions",
    "Number of current sessions on the frontend, backend or server.",
);
/// Backend connections made.
pub const HA_BACKEND_SESSIONS: Name = (
    "haproxy_backend_sessions_total",
    "Total number of sessions on the frontend, backend or server.",
);
/// Bytes to the backends.
pub const HA_BACKEND_BYTES_IN: Name = (
    "haproxy_backend_bytes_in_total",
    "Total number of request bytes since process started.",
);
/// Bytes from the backends.
pub const HA_BACKEND_BYTES_OUT: Name = (
    "haproxy_backend_bytes_out_total",
    "Total number of response bytes since process started.",
);
/// Responses from the backends by `code` class.
pub const HA_BACKEND_HTTP_RESPONSES: Name = (
    "haproxy_backend_http_responses_total",
    "Total number of HTTP responses with status 100-199 returned by this object.",
);
/// Failed backend connects.
pub const HA_BACKEND_CONNECTION_ERRORS: Name = (
    "haproxy_backend_connection_errors_total",
    "Total number of failed connections to server since the worker process started.",
);
/// Requests sent again on another connection.
pub const HA_BACKEND_RETRY_WARNINGS: Name = (
    "haproxy_backend_retry_warnings_total",
    "Total number of server connection retries since the worker process started.",
);
/// Servers up.
pub const HA_BACKEND_ACTIVE_SERVERS: Name = (
    "haproxy_backend_active_servers",
    "Total number of active UP servers with a non-zero weight.",
);
/// Recent average response time.
pub const HA_BACKEND_RESPONSE_TIME: Name = (
    "haproxy_backend_response_time_average_seconds",
    "Avg. response time for last 1024 successful connections.",
);
/// Recent average queue time (moirai never queues: 0).
pub const HA_BACKEND_QUEUE_TIME: Name = (
    "haproxy_backend_queue_time_average_seconds",
    "Avg. queue time for last 1024 successful connections.",
);
/// Server state, one-hot over `state` (DOWN, UP, MAINT, DRAIN, NOLB).
pub const HA_SERVER_STATUS: Name = (
    "haproxy_server_status",
    "Current status of the service, per state label value.",
);
/// Server connections in use now.
pub const HA_SERVER_CURRENT_SESSIONS: Name = (
    "haproxy_server_current_sessions",
    "Number of current sessions on the frontend, backend or server.",
);
/// Server connections made.
pub const HA_SERVER_SESSIONS: Name = (
    "haproxy_server_sessions_total",
    "Total number of sessions on the frontend, backend or server.",
);
/// Bytes to the server.
pub const HA_SERVER_BYTES_IN: Name = (
    "haproxy_server_bytes_in_total",
    "Total number of request bytes since process started.",
);
/// Bytes from the server.
pub const HA_SERVER_BYTES_OUT: Name = (
    "haproxy_server_bytes_out_total",
    "Total number of response bytes since process started.",
);
/// Responses from the server by `code` class.
pub const HA_SERVER_HTTP_RESPONSES: Name = (
    "haproxy_server_http_responses_total",
    "Total number of HTTP responses with status 100-199 returned by this object.",
);
/// Failed connects to the server.
pub const HA_SERVER_CONNECTION_ERRORS: Name = (
    "haproxy_server_connection_errors_total",
    "Total number of failed connections to server since the worker process started.",
);
/// The last check's result, one-hot over HAProxy's check states.
pub const HA_SERVER_CHECK_STATUS: Name = (
    "haproxy_server_check_status",
    "Status of last health check, per state label value.",
);
/// How long the last passing check took.
pub const HA_SERVER_CHECK_DURATION: Name = (
    "haproxy_server_check_duration_seconds",
    "Total duration of the latest server health check, in seconds.",
);
/// Failed checks.
pub const HA_SERVER_CHECK_FAILURES: Name = ("haproxy_server_check_failures_total", "Total number of failed individual health checks per server/backend, since the worker process started.");

// ---- haproxy_frontend_*: added for the dashboards' other panels ----

/// HAProxy 2.6's `haproxy_frontend_limit_sessions` (gauge).
pub const HA_FRONTEND_LIMIT_SESSIONS: Name = (
    "haproxy_frontend_limit_sessions",
    "Frontend/listener/server's maxconn, backend's fullconn",
);
/// HAProxy 2.6's `haproxy_frontend_requests_denied_total` (counter).
pub const HA_FRONTEND_REQUESTS_DENIED: Name = (
    "haproxy_frontend_requests_denied_total",
    "Total number of denied requests since process started",
);
/// HAProxy 2.6's `haproxy_frontend_responses_denied_total` (counter).
pub const HA_FRONTEND_RESPONSES_DENIED: Name = (
    "haproxy_frontend_responses_denied_total",
    "Total number of denied responses since process started",
);
/// HAProxy 2.6's `haproxy_frontend_request_errors_total` (counter).
pub const HA_FRONTEND_REQUEST_ERRORS: Name = (
    "haproxy_frontend_request_errors_total",
    "Total number of invalid requests since process started",
);
/// HAProxy 2.6's `haproxy_frontend_limit_session_rate` (gauge).
pub const HA_FRONTEND_LIMIT_SESSION_RATE: Name = (
    "haproxy_frontend_limit_session_rate",
    "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting)",
);
/// HAProxy 2.6's `haproxy_frontend_http_requests_total` (counter).
pub const HA_FRONTEND_HTTP_REQUESTS: Name = (
    "haproxy_frontend_http_requests_total",
    "Total number of HTTP requests processed by this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_http_comp_bytes_in_total` (counter).
pub const HA_FRONTEND_HTTP_COMP_BYTES_IN: Name = (
    "haproxy_frontend_http_comp_bytes_in_total",
    "Total number of bytes submitted to the HTTP compressor for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_http_comp_bytes_out_total` (counter).
pub const HA_FRONTEND_HTTP_COMP_BYTES_OUT: Name = (
    "haproxy_frontend_http_comp_bytes_out_total",
    "Total number of bytes emitted by the HTTP compressor for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_http_comp_bytes_bypassed_total` (counter).
pub const HA_FRONTEND_HTTP_COMP_BYTES_BYPASSED: Name = (
    "haproxy_frontend_http_comp_bytes_bypassed_total",
    "Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation)",
);
/// HAProxy 2.6's `haproxy_frontend_http_comp_responses_total` (counter).
pub const HA_FRONTEND_HTTP_COMP_RESPONSES: Name = (
    "haproxy_frontend_http_comp_responses_total",
    "Total number of HTTP responses that were compressed for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_intercepted_requests_total` (counter).
pub const HA_FRONTEND_INTERCEPTED_REQUESTS: Name = (
    "haproxy_frontend_intercepted_requests_total",
    "Total number of HTTP requests intercepted on the frontend (redirects/stats/services) since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_denied_connections_total` (counter).
pub const HA_FRONTEND_DENIED_CONNECTIONS: Name = (
    "haproxy_frontend_denied_connections_total",
    "Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_denied_sessions_total` (counter).
pub const HA_FRONTEND_DENIED_SESSIONS: Name = (
    "haproxy_frontend_denied_sessions_total",
    "Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_failed_header_rewriting_total` (counter).
pub const HA_FRONTEND_FAILED_HEADER_REWRITING: Name = (
    "haproxy_frontend_failed_header_rewriting_total",
    "Total number of failed HTTP header rewrites since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_http_cache_lookups_total` (counter).
pub const HA_FRONTEND_HTTP_CACHE_LOOKUPS: Name = (
    "haproxy_frontend_http_cache_lookups_total",
    "Total number of HTTP requests looked up in the cache on this frontend/backend since the worker process started",
);
/// HAProxy 2.6's `haproxy_frontend_http_cache_hits_total` (counter).
pub const HA_FRONTEND_HTTP_CACHE_HITS: Name = (
    "haproxy_frontend_http_cache_hits_total",
    "Total number of HTTP requests not found in the cache on this frontend/backend since the worker process started",
);

// ---- haproxy_backend_*: added for the dashboards' other panels ----

/// HAProxy 2.6's `haproxy_backend_current_queue` (gauge).
pub const HA_BACKEND_CURRENT_QUEUE: Name = (
    "haproxy_backend_current_queue",
    "Number of current queued connections",
);
/// HAProxy 2.6's `haproxy_backend_max_queue` (gauge).
pub const HA_BACKEND_MAX_QUEUE: Name = (
    "haproxy_backend_max_queue",
    "Highest value of queued connections encountered since process started",
);
/// HAProxy 2.6's `haproxy_backend_requests_denied_total` (counter).
pub const HA_BACKEND_REQUESTS_DENIED: Name = (
    "haproxy_backend_requests_denied_total",
    "Total number of denied requests since process started",
);
/// HAProxy 2.6's `haproxy_backend_responses_denied_total` (counter).
pub const HA_BACKEND_RESPONSES_DENIED: Name = (
    "haproxy_backend_responses_denied_total",
    "Total number of denied responses since process started",
);
/// HAProxy 2.6's `haproxy_backend_response_errors_total` (counter).
pub const HA_BACKEND_RESPONSE_ERRORS: Name = (
    "haproxy_backend_response_errors_total",
    "Total number of invalid responses since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_redispatch_warnings_total` (counter).
pub const HA_BACKEND_REDISPATCH_WARNINGS: Name = (
    "haproxy_backend_redispatch_warnings_total",
    "Total number of server redispatches due to connection failures since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_weight` (gauge).
pub const HA_BACKEND_WEIGHT: Name = (
    "haproxy_backend_weight",
    "Server's effective weight, or sum of active servers' effective weights for a backend",
);
/// HAProxy 2.6's `haproxy_backend_backup_servers` (gauge).
pub const HA_BACKEND_BACKUP_SERVERS: Name = (
    "haproxy_backend_backup_servers",
    "Total number of backup UP servers with a non-zero weight",
);
/// HAProxy 2.6's `haproxy_backend_loadbalanced_total` (counter).
pub const HA_BACKEND_LOADBALANCED: Name = (
    "haproxy_backend_loadbalanced_total",
    "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
);
/// HAProxy 2.6's `haproxy_backend_http_requests_total` (counter).
pub const HA_BACKEND_HTTP_REQUESTS: Name = (
    "haproxy_backend_http_requests_total",
    "Total number of HTTP requests processed by this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_client_aborts_total` (counter).
pub const HA_BACKEND_CLIENT_ABORTS: Name = (
    "haproxy_backend_client_aborts_total",
    "Total number of requests or connections aborted by the client since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_server_aborts_total` (counter).
pub const HA_BACKEND_SERVER_ABORTS: Name = (
    "haproxy_backend_server_aborts_total",
    "Total number of requests or connections aborted by the server since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_http_comp_bytes_in_total` (counter).
pub const HA_BACKEND_HTTP_COMP_BYTES_IN: Name = (
    "haproxy_backend_http_comp_bytes_in_total",
    "Total number of bytes submitted to the HTTP compressor for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_http_comp_bytes_out_total` (counter).
pub const HA_BACKEND_HTTP_COMP_BYTES_OUT: Name = (
    "haproxy_backend_http_comp_bytes_out_total",
    "Total number of bytes emitted by the HTTP compressor for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_http_comp_bytes_bypassed_total` (counter).
pub const HA_BACKEND_HTTP_COMP_BYTES_BYPASSED: Name = (
    "haproxy_backend_http_comp_bytes_bypassed_total",
    "Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation)",
);
/// HAProxy 2.6's `haproxy_backend_http_comp_responses_total` (counter).
pub const HA_BACKEND_HTTP_COMP_RESPONSES: Name = (
    "haproxy_backend_http_comp_responses_total",
    "Total number of HTTP responses that were compressed for this object since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_last_session_seconds` (gauge).
pub const HA_BACKEND_LAST_SESSION_SECONDS: Name = (
    "haproxy_backend_last_session_seconds",
    "How long ago some traffic was seen on this object on this worker process, in seconds",
);
/// HAProxy 2.6's `haproxy_backend_connect_time_average_seconds` (gauge).
pub const HA_BACKEND_CONNECT_TIME_AVERAGE_SECONDS: Name = (
    "haproxy_backend_connect_time_average_seconds",
    "Avg. connect time for last 1024 successful connections.",
);
/// HAProxy 2.6's `haproxy_backend_failed_header_rewriting_total` (counter).
pub const HA_BACKEND_FAILED_HEADER_REWRITING: Name = (
    "haproxy_backend_failed_header_rewriting_total",
    "Total number of failed HTTP header rewrites since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_connection_attempts_total` (counter).
pub const HA_BACKEND_CONNECTION_ATTEMPTS: Name = (
    "haproxy_backend_connection_attempts_total",
    "Total number of outgoing connection attempts on this backend/server since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_connection_reuses_total` (counter).
pub const HA_BACKEND_CONNECTION_REUSES: Name = (
    "haproxy_backend_connection_reuses_total",
    "Total number of reused connection on this backend/server since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_http_cache_lookups_total` (counter).
pub const HA_BACKEND_HTTP_CACHE_LOOKUPS: Name = (
    "haproxy_backend_http_cache_lookups_total",
    "Total number of HTTP requests looked up in the cache on this frontend/backend since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_http_cache_hits_total` (counter).
pub const HA_BACKEND_HTTP_CACHE_HITS: Name = (
    "haproxy_backend_http_cache_hits_total",
    "Total number of HTTP requests not found in the cache on this frontend/backend since the worker process started",
);
/// HAProxy 2.6's `haproxy_backend_max_queue_time_seconds` (gauge).
pub const HA_BACKEND_MAX_QUEUE_TIME_SECONDS: Name = (
    "haproxy_backend_max_queue_time_seconds",
    "Maximum observed time spent in the queue",
);
/// HAProxy 2.6's `haproxy_backend_max_connect_time_seconds` (gauge).
pub const HA_BACKEND_MAX_CONNECT_TIME_SECONDS: Name = (
    "haproxy_backend_max_connect_time_seconds",
    "Maximum observed time spent waiting for a connection to complete",
);
/// HAProxy 2.6's `haproxy_backend_max_response_time_seconds` (gauge).
pub const HA_BACKEND_MAX_RESPONSE_TIME_SECONDS: Name = (
    "haproxy_backend_max_response_time_seconds",
    "Maximum observed time spent waiting for a server response",
);
/// HAProxy 2.6's `haproxy_backend_uweight` (gauge).
pub const HA_BACKEND_UWEIGHT: Name = (
    "haproxy_backend_uweight",
    "Server's user weight, or sum of active servers' user weights for a backend",
);
/// HAProxy 2.6's `haproxy_backend_agg_server_status` (gauge).
pub const HA_BACKEND_AGG_SERVER_STATUS: Name = (
    "haproxy_backend_agg_server_status",
    "Backend's aggregated gauge of servers' status",
);
/// HAProxy 2.6's `haproxy_backend_agg_server_check_status` (gauge).
pub const HA_BACKEND_AGG_SERVER_CHECK_STATUS: Name = (
    "haproxy_backend_agg_server_check_status",
    "Backend's aggregated gauge of servers' state check status",
);
/// HAProxy 2.6's `haproxy_backend_agg_check_status` (gauge).
pub const HA_BACKEND_AGG_CHECK_STATUS: Name = (
    "haproxy_backend_agg_check_status",
    "Backend's aggregated gauge of servers' state check status",
);

// ---- haproxy_server_*: added for the dashboards' other panels ----

/// HAProxy 2.6's `haproxy_server_current_queue` (gauge).
pub const HA_SERVER_CURRENT_QUEUE: Name = (
    "haproxy_server_current_queue",
    "Number of current queued connections",
);
/// HAProxy 2.6's `haproxy_server_max_queue` (gauge).
pub const HA_SERVER_MAX_QUEUE: Name = (
    "haproxy_server_max_queue",
    "Highest value of queued connections encountered since process started",
);
/// HAProxy 2.6's `haproxy_server_limit_sessions` (gauge).
pub const HA_SERVER_LIMIT_SESSIONS: Name = (
    "haproxy_server_limit_sessions",
    "Frontend/listener/server's maxconn, backend's fullconn",
);
/// HAProxy 2.6's `haproxy_server_responses_denied_total` (counter).
pub const HA_SERVER_RESPONSES_DENIED: Name = (
    "haproxy_server_responses_denied_total",
    "Total number of denied responses since process started",
);
/// HAProxy 2.6's `haproxy_server_retry_warnings_total` (counter).
pub const HA_SERVER_RETRY_WARNINGS: Name = (
    "haproxy_server_retry_warnings_total",
    "Total number of server connection retries since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_redispatch_warnings_total` (counter).
pub const HA_SERVER_REDISPATCH_WARNINGS: Name = (
    "haproxy_server_redispatch_warnings_total",
    "Total number of server redispatches due to connection failures since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_weight` (gauge).
pub const HA_SERVER_WEIGHT: Name = (
    "haproxy_server_weight",
    "Server's effective weight, or sum of active servers' effective weights for a backend",
);
/// HAProxy 2.6's `haproxy_server_check_up_down_total` (counter).
pub const HA_SERVER_CHECK_UP_DOWN: Name = (
    "haproxy_server_check_up_down_total",
    "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_check_last_change_seconds` (gauge).
pub const HA_SERVER_CHECK_LAST_CHANGE_SECONDS: Name = (
    "haproxy_server_check_last_change_seconds",
    "How long ago the last server state changed, in seconds",
);
/// HAProxy 2.6's `haproxy_server_downtime_seconds_total` (counter).
pub const HA_SERVER_DOWNTIME_SECONDS: Name = (
    "haproxy_server_downtime_seconds_total",
    "Total time spent in DOWN state, for server or backend",
);
/// HAProxy 2.6's `haproxy_server_queue_limit` (gauge).
pub const HA_SERVER_QUEUE_LIMIT: Name = (
    "haproxy_server_queue_limit",
    "Limit on the number of connections in queue, for servers only (maxqueue argument)",
);
/// HAProxy 2.6's `haproxy_server_current_throttle` (gauge).
pub const HA_SERVER_CURRENT_THROTTLE: Name = (
    "haproxy_server_current_throttle",
    "Throttling ratio applied to a server's maxconn and weight during the slowstart period (0 to 100%)",
);
/// HAProxy 2.6's `haproxy_server_loadbalanced_total` (counter).
pub const HA_SERVER_LOADBALANCED: Name = (
    "haproxy_server_loadbalanced_total",
    "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
);
/// HAProxy 2.6's `haproxy_server_client_aborts_total` (counter).
pub const HA_SERVER_CLIENT_ABORTS: Name = (
    "haproxy_server_client_aborts_total",
    "Total number of requests or connections aborted by the client since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_server_aborts_total` (counter).
pub const HA_SERVER_SERVER_ABORTS: Name = (
    "haproxy_server_server_aborts_total",
    "Total number of requests or connections aborted by the server since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_last_session_seconds` (gauge).
pub const HA_SERVER_LAST_SESSION_SECONDS: Name = (
    "haproxy_server_last_session_seconds",
    "How long ago some traffic was seen on this object on this worker process, in seconds",
);
/// HAProxy 2.6's `haproxy_server_queue_time_average_seconds` (gauge).
pub const HA_SERVER_QUEUE_TIME_AVERAGE_SECONDS: Name = (
    "haproxy_server_queue_time_average_seconds",
    "Avg. queue time for last 1024 successful connections.",
);
/// HAProxy 2.6's `haproxy_server_failed_header_rewriting_total` (counter).
pub const HA_SERVER_FAILED_HEADER_REWRITING: Name = (
    "haproxy_server_failed_header_rewriting_total",
    "Total number of failed HTTP header rewrites since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_connection_attempts_total` (counter).
pub const HA_SERVER_CONNECTION_ATTEMPTS: Name = (
    "haproxy_server_connection_attempts_total",
    "Total number of outgoing connection attempts on this backend/server since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_connection_reuses_total` (counter).
pub const HA_SERVER_CONNECTION_REUSES: Name = (
    "haproxy_server_connection_reuses_total",
    "Total number of reused connection on this backend/server since the worker process started",
);
/// HAProxy 2.6's `haproxy_server_max_queue_time_seconds` (gauge).
pub const HA_SERVER_MAX_QUEUE_TIME_SECONDS: Name = (
    "haproxy_server_max_queue_time_seconds",
    "Maximum observed time spent in the queue",
);
/// HAProxy 2.6's `haproxy_server_max_connect_time_seconds` (gauge).
pub const HA_SERVER_MAX_CONNECT_TIME_SECONDS: Name = (
    "haproxy_server_max_connect_time_seconds",
    "Maximum observed time spent waiting for a connection to complete",
);
/// HAProxy 2.6's `haproxy_server_max_response_time_seconds` (gauge).
pub const HA_SERVER_MAX_RESPONSE_TIME_SECONDS: Name = (
    "haproxy_server_max_response_time_seconds",
    "Maximum observed time spent waiting for a server response",
);
/// HAProxy 2.6's `haproxy_server_used_connections_current` (gauge).
pub const HA_SERVER_USED_CONNECTIONS_CURRENT: Name = (
    "haproxy_server_used_connections_current",
    "Current number of connections in use",
);
/// HAProxy 2.6's `haproxy_server_uweight` (gauge).
pub const HA_SERVER_UWEIGHT: Name = (
    "haproxy_server_uweight",
    "Server's user weight, or sum of active servers' user weights for a backend",
);

// ---- haproxy_process_*: added for the dashboards' other panels ----

/// HAProxy 2.6's `haproxy_process_nbthread` (gauge).
pub const HA_PROCESS_NBTHREAD: Name = (
    "haproxy_process_nbthread",
    "Number of started threads (global.nbthread)",
);
/// HAProxy 2.6's `haproxy_process_nbproc` (gauge).
pub const HA_PROCESS_NBPROC: Name = (
    "haproxy_process_nbproc",
    "Number of started worker processes (historical, always 1)",
);
/// HAProxy 2.6's `haproxy_process_relative_process_id` (gauge).
pub const HA_PROCESS_RELATIVE_PROCESS_ID: Name = (
    "haproxy_process_relative_process_id",
    "Relative worker process number (1)",
);
/// HAProxy 2.6's `haproxy_process_uptime_seconds` (gauge).
pub const HA_PROCESS_UPTIME_SECONDS: Name = (
    "haproxy_process_uptime_seconds",
    "How long ago this worker process was started (seconds)",
);
/// HAProxy 2.6's `haproxy_process_start_time_seconds` (gauge).
pub const HA_PROCESS_START_TIME_SECONDS: Name = (
    "haproxy_process_start_time_seconds",
    "Start time in seconds",
);
/// HAProxy 2.6's `haproxy_process_max_fds` (gauge).
pub const HA_PROCESS_MAX_FDS: Name = (
    "haproxy_process_max_fds",
    "Hard limit on the number of per-process file descriptors",
);
/// HAProxy 2.6's `haproxy_process_max_connections` (gauge).
pub const HA_PROCESS_MAX_CONNECTIONS: Name = (
    "haproxy_process_max_connections",
    "Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)",
);
/// HAProxy 2.6's `haproxy_process_hard_max_connections` (gauge).
pub const HA_PROCESS_HARD_MAX_CONNECTIONS: Name = (
    "haproxy_process_hard_max_connections",
    "Hard limit on the number of per-process connections (imposed by Memmax_MB or Ulimit-n)",
);
/// HAProxy 2.6's `haproxy_process_current_connections` (gauge).
pub const HA_PROCESS_CURRENT_CONNECTIONS: Name = (
    "haproxy_process_current_connections",
    "Current number of connections on this worker process",
);
/// HAProxy 2.6's `haproxy_process_connections_total` (counter).
pub const HA_PROCESS_CONNECTIONS: Name = (
    "haproxy_process_connections_total",
    "Total number of connections on this worker process since started",
);
/// HAProxy 2.6's `haproxy_process_requests_total` (counter).
pub const HA_PROCESS_REQUESTS: Name = (
    "haproxy_process_requests_total",
    "Total number of requests on this worker process since started",
);
/// HAProxy 2.6's `haproxy_process_max_pipes` (gauge).
pub const HA_PROCESS_MAX_PIPES: Name = (
    "haproxy_process_max_pipes",
    "Hard limit on the number of pipes for splicing, 0=unlimited",
);
/// HAProxy 2.6's `haproxy_process_pipes_used_total` (counter).
pub const HA_PROCESS_PIPES_USED: Name = (
    "haproxy_process_pipes_used_total",
    "Current number of pipes in use in this worker process",
);
/// HAProxy 2.6's `haproxy_process_pipes_free_total` (counter).
pub const HA_PROCESS_PIPES_FREE: Name = (
    "haproxy_process_pipes_free_total",
    "Current number of allocated and available pipes in this worker process",
);
/// HAProxy 2.6's `haproxy_process_http_comp_bytes_in_total` (counter).
pub const HA_PROCESS_HTTP_COMP_BYTES_IN: Name = (
    "haproxy_process_http_comp_bytes_in_total",
    "Number of bytes submitted to the HTTP compressor in this worker process over the last second",
);
/// HAProxy 2.6's `haproxy_process_http_comp_bytes_out_total` (counter).
pub const HA_PROCESS_HTTP_COMP_BYTES_OUT: Name = (
    "haproxy_process_http_comp_bytes_out_total",
    "Number of bytes emitted by the HTTP compressor in this worker process over the last second",
);
/// HAProxy 2.6's `haproxy_process_limit_http_comp` (gauge).
pub const HA_PROCESS_LIMIT_HTTP_COMP: Name = (
    "haproxy_process_limit_http_comp",
    "Limit of CompressBpsOut beyond which HTTP compression is automatically disabled",
);
/// HAProxy 2.6's `haproxy_process_stopping` (gauge).
pub const HA_PROCESS_STOPPING: Name = (
    "haproxy_process_stopping",
    "1 if the worker process is currently stopping, otherwise zero",
);
/// HAProxy 2.6's `haproxy_process_active_peers` (gauge).
pub const HA_PROCESS_ACTIVE_PEERS: Name = (
    "haproxy_process_active_peers",
    "Current number of verified active peers connections on the current worker process",
);
/// HAProxy 2.6's `haproxy_process_connected_peers` (gauge).
pub const HA_PROCESS_CONNECTED_PEERS: Name = (
    "haproxy_process_connected_peers",
    "Current number of peers having passed the connection step on the current worker process",
);
/// HAProxy 2.6's `haproxy_process_dropped_logs_total` (counter).
pub const HA_PROCESS_DROPPED_LOGS: Name = (
    "haproxy_process_dropped_logs_total",
    "Total number of dropped logs for current worker process since started",
);
/// HAProxy 2.6's `haproxy_process_busy_polling_enabled` (gauge).
pub const HA_PROCESS_BUSY_POLLING_ENABLED: Name = (
    "haproxy_process_busy_polling_enabled",
    "1 if busy-polling is currently in use on the worker process, otherwise zero (config.busy-polling)",
);
/// HAProxy 2.6's `haproxy_process_spliced_bytes_out_total` (counter).
pub const HA_PROCESS_SPLICED_BYTES_OUT: Name = (
    "haproxy_process_spliced_bytes_out_total",
    "Total number of bytes emitted by current worker process through a kernel pipe since started",
);
/// HAProxy 2.6's `haproxy_process_recv_logs_total` (counter).
pub const HA_PROCESS_RECV_LOGS: Name = (
    "haproxy_process_recv_logs_total",
    "Total number of log messages received by log-forwarding listeners on this worker process since started",
);
/// HAProxy 2.6's `haproxy_process_build_info` (gauge).
pub const HA_PROCESS_BUILD_INFO: Name = ("haproxy_process_build_info", "Build info");
/// HAProxy 2.6's `haproxy_process_max_memory_bytes` (gauge).
pub const HA_PROCESS_MAX_MEMORY_BYTES: Name = (
    "haproxy_process_max_memory_bytes",
    "Worker process's hard limit on memory usage in byes (-m on command line)",
);
