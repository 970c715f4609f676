//! What the workers count, and how, without costing the data plane.
//!
//! Every counter is sharded by worker and each shard has one writer, so an
//! increment is a relaxed load and store on a cache line no other thread
//! writes: no lock, no atomic read-modify-write, no false sharing. The
//! control thread sums the shards when it renders. Latencies go into
//! per-worker hdrhistograms that are handed to the control thread once a
//! second and merged there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

/// A counter with one writing thread.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    /// Adds `n`. Only the owning worker calls this, so a plain load and
    /// store cannot lose an update.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The value now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the value to `n` if it is below: a per-worker peak, whose
    /// maximum over the shards is the exact peak (unlike a sum of peaks).
    #[inline]
    pub fn raise(&self, n: u64) {
        if n > self.get() {
            self.0.store(n, Ordering::Relaxed);
        }
    }

    /// Records `now` as a moment (see [`moment`]); 0 stays "never".
    #[inline]
    pub fn stamp(&self, now: Instant) {
        self.0.store(moment(now), Ordering::Relaxed);
    }
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// `at` as milliseconds since the first moment taken, plus one, so that a
/// [`Count`] holding a moment can say "never" with 0: a store of a number
/// the workers already have (their batch time), no clock call.
pub fn moment(at: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// How long ago moment `m` was, in seconds; `None` for never (0).
pub fn since_moment(m: u64) -> Option<f64> {
    let now = moment(Instant::now());
    (m > 0).then(|| now.saturating_sub(m) as f64 / 1000.0)
}

/// HTTP status classes 1xx..5xx.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One worker's counts for a service or a backend. "In" is the request
/// direction (client to backend), "out" the response direction, as in
/// HAProxy.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections opened: accepted (service) or connected to (backend).
    pub opened: Count,
    /// Connections closed; open = opened - closed.
    pub closed: Count,
    /// Responses by status class, index 0 = 1xx.
    pub responses: [Count; 5],
    /// Bytes in the request direction.
    pub bytes_in: Count,
    /// Bytes in the response direction.
    pub bytes_out: Count,
    /// Failed connects (refused, unreachable, timed out).
    pub connect_errors: Count,
    /// Connects retried on another backend after a failure.
    pub retries: Count,
    /// Connections ended by a client or server timeout.
    pub timeouts: Count,
    /// Connections cut by a reset (either side) or refused framing.
    pub resets: Count,
    /// Connections closed because no backend was usable (tcp types;
    /// http answers 503, counted in `own`).
    pub no_backend: Count,
    /// Responses moirai made itself, by [`crate::proto::http1::errors::Status::index`]
    /// (400, 408, 431, 501, 502, 503, 504): counted on the error path only.
    pub own: [Count; 7],
    /// Service: complete, valid request heads received (http types).
    pub requests: Count,
    /// Service: requests handed to backend selection (http types), a 503
    /// for want of a backend included (HAProxy's backend `cum_req`).
    pub routed: Count,
    /// Service: requests moirai answered itself, not as an error (ACME
    /// challenges; HAProxy's `intercepted`).
    pub intercepted: Count,
    /// Service: requests redirected to https (`redirect:`).
    pub redirects: Count,
    /// Service: client connections that spoke HTTP/2.
    pub h2_connections: Count,
    /// Service: HTTP/2 request streams opened.
    pub h2_streams: Count,
    /// Service: HTTP/2 streams the client reset.
    pub h2_resets_in: Count,
    /// Service: HTTP/2 streams moirai reset (a client's fault on the
    /// stream, a backend that failed after the status).
    pub h2_resets_out: Count,
    /// Service: HTTP/2 connections ended by a protocol error or a limit,
    /// by the code of our GOAWAY ([`crate::proto::h2::ErrorCode::to_u32`];
    /// NO_ERROR is never counted).
    pub h2_errors: [Count; H2_CODES],
    /// Service: HTTP/2 client connections that ended; open = connections
    /// - closed.
    pub h2_closed: Count,
    /// Service: HTTP/2 request streams that ended; open = streams - done.
    pub h2_streams_done: Count,
    /// Service: times each HTTP/2 hardening limit was hit, by
    /// [`crate::proto::h2::limits::Limit::index`].
    pub h2_limits: [Count; H2_LIMITS],
    /// Backend: times load balancing chose it (not a sticky cookie or a
    /// pinned login), a connect redispatched to it included.
    pub balanced: Count,
    /// Backend: requests sent on a kept-alive connection, not a new one.
    pub reuses: Count,
    /// Connections cut or timed out by the client while a backend was
    /// engaged (HAProxy's `cli_aborts`).
    pub client_aborts: Count,
    /// Connections cut or timed out by the backend (HAProxy's `srv_aborts`).
    pub server_aborts: Count,
    /// A failed connect retried on another backend (HAProxy's
    /// `redispatches`): the service's, and the backend that failed.
    pub redispatches: Count,
    /// Backend: requests it failed to answer properly (502, 504 sent for
    /// it; HAProxy's `eresp`).
    pub response_errors: Count,
    /// Backend: the last moment ([`moment`]) a request or connection was
    /// given to it. The shards' maximum is the last over all workers.
    pub last_session: Count,
    /// Backend: the longest connect, in microseconds (shards: maximum).
    pub max_connect_us: Count,
    /// Backend: the longest response time (request head sent to response
    /// head received), in microseconds (shards: maximum).
    pub max_response_us: Count,
}

impl Counters {
    /// Counts a response with `status`.
    #[inline]
    pub fn response(&self, status: u16) {
        if let Some(c) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.add(1);
        }
    }
}

/// HTTP/2 error codes counted (RFC 9113 §7: 0x0 to 0xd).
pub const H2_CODES: usize = 14;
/// HTTP/2 limits counted.
pub const H2_LIMITS: usize = crate::proto::h2::limits::Limit::ALL.len();

/// The sum of every worker's [`Counters`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// See [`Counters::opened`].
    pub opened: u64,
    /// See [`Counters::closed`].
    pub closed: u64,
    /// See [`Counters::responses`].
    pub responses: [u64; 5],
    /// See [`Counters::bytes_in`].
    pub bytes_in: u64,
    /// See [`Counters::bytes_out`].
    pub bytes_out: u64,
    /// See [`Counters::connect_errors`].
    pub connect_errors: u64,
    /// See [`Counters::retries`].
    pub retries: u64,
    /// See [`Counters::timeouts`].
    pub timeouts: u64,
    /// See [`Counters::resets`].
    pub resets: u64,
    /// See [`Counters::no_backend`].
    pub no_backend: u64,
    /// See [`Counters::own`].
    pub own: [u64; 7],
    /// See [`Counters::requests`].
    pub requests: u64,
    /// See [`Counters::routed`].
    pub routed: u64,
    /// See [`Counters::intercepted`].
    pub intercepted: u64,
    /// See [`Counters::redirects`].
    pub redirects: u64,
    /// See [`Counters::h2_connections`].
    pub h2_connections: u64,
    /// See [`Counters::h2_streams`].
    pub h2_streams: u64,
    /// See [`Counters::h2_resets_in`].
    pub h2_resets_in: u64,
    /// See [`Counters::h2_resets_out`].
    pub h2_resets_out: u64,
    /// See [`Counters::h2_errors`].
    pub h2_errors: [u64; H2_CODES],
    /// See [`Counters::h2_closed`].
    pub h2_closed: u64,
    /// See [`Counters::h2_streams_done`].
    pub h2_streams_done: u64,
    /// See [`Counters::h2_limits`].
    pub h2_limits: [u64; H2_LIMITS],
    /// See [`Counters::balanced`].
    pub balanced: u64,
    /// See [`Counters::reuses`].
    pub reuses: u64,
    /// See [`Counters::client_aborts`].
    pub client_aborts: u64,
    /// See [`Counters::server_aborts`].
    pub server_aborts: u64,
    /// See [`Counters::redispatches`].
    pub redispatches: u64,
    /// See [`Counters::response_errors`].
    pub response_errors: u64,
    /// See [`Counters::last_session`]: the latest over the shards.
    pub last_session: u64,
    /// See [`Counters::max_connect_us`]: the maximum over the shards.
    pub max_connect_us: u64,
    /// See [`Counters::max_response_us`]: the maximum over the shards.
    pub max_response_us: u64,
}

/// [`Counters`] with one cache-padded shard per worker.
#[derive(Debug)]
pub struct Sharded(Box<[CachePadded<Counters>]>);

impl Sharded {
    /// Shards for `workers` workers (at least one).
    pub fn new(workers: usize) -> Sharded {
        Sharded(
            (0..workers.max(1))
                .map(|_| CachePadded::new(Counters::default()))
                .collect(),
        )
    }

    /// Worker `w`'s shard. A worker id beyond the shards (a snapshot built
    /// for fewer workers) shares the last one: wrong only in who writes,
    /// never in what is counted, and it cannot happen in `moirai run`.
    #[inline]
    pub fn of(&self, w: usize) -> &Counters {
        &self.0[w.min(self.0.len() - 1)]
    }

    /// The totals over all workers.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in self.0.iter() {
            t.opened += c.opened.get();
            t.closed += c.closed.get();
            for (sum, r) in t.responses.iter_mut().zip(&c.responses) {
                *sum += r.get();
            }
            t.bytes_in += c.bytes_in.get();
            t.bytes_out += c.bytes_out.get();
            t.connect_errors += c.connect_errors.get();
            t.retries += c.retries.get();
            t.timeouts += c.timeouts.get();
            t.resets += c.resets.get();
            t.no_backend += c.no_backend.get();
            for (sum, r) in t.own.iter_mut().zip(&c.own) {
                *sum += r.get();
            }
            t.requests += c.requests.get();
            t.routed += c.routed.get();
            t.intercepted += c.intercepted.get();
            t.redirects += c.redirects.get();
            t.h2_connections += c.h2_connections.get();
            t.h2_streams += c.h2_streams.get();
            t.h2_resets_in += c.h2_resets_in.get();
            t.h2_resets_out += c.h2_resets_out.get();
            for (sum, n) in t.h2_errors.iter_mut().zip(&c.h2_errors) {
                *sum += n.get();
            }
            t.h2_closed += c.h2_closed.get();
            t.h2_streams_done += c.h2_streams_done.get();
            for (sum, n) in t.h2_limits.iter_mut().zip(&c.h2_limits) {
                *sum += n.get();
            }
            t.balanced += c.balanced.get();
            t.reuses += c.reuses.get();
            t.client_aborts += c.client_aborts.get();
            t.server_aborts += c.server_aborts.get();
            t.redispatches += c.redispatches.get();
            t.response_errors += c.response_errors.get();
            t.last_session = t.last_session.max(c.last_session.get());
            t.max_connect_us = t.max_connect_us.max(c.max_connect_us.get());
            t.max_response_us = t.max_response_us.max(c.max_response_us.get());
        }
        t
    }
}

/// Syslog lines sent and dropped, one shard per worker.
#[derive(Debug)]
pub struct SyslogCounters(Box<[CachePadded<(Count, Count)>]>);

impl SyslogCounters {
    /// Shards for `workers` workers.
    pub fn new(workers: usize) -> SyslogCounters {
        SyslogCounters(
            (0..workers.max(1))
                .map(|_| CachePadded::new((Count::default(), Count::default())))
                .collect(),
        )
    }

    /// How many workers count here.
    pub fn workers(&self) -> usize {
        self.0.len()
    }

    /// Counts a line of worker `w`: sent, or dropped.
    #[inline]
    pub fn count(&self, w: usize, sent: bool) {
        let (s, d) = &*self.0[w.min(self.0.len() - 1)];
        if sent {
            s.add(1);
        } else {
            d.add(1);
        }
    }

    /// (sent, dropped) over all workers.
    pub fn totals(&self) -> (u64, u64) {
        self.0
            .iter()
            .fold((0, 0), |(s, d), c| (s + c.0.get(), d + c.1.get()))
    }
}

/// Microseconds: the unit latencies are recorded in.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram: 1 µs to an hour, two significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("static bounds are valid")
}

/// `d` in whole microseconds, the unit peaks are kept in.
#[inline]
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Records `d` (clamped to the histogram's range).
#[inline]
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
    h.saturating_record(us.clamp(1, MAX_MICROS));
}

/// One worker's latencies for one service since the last hand-over.
#[derive(Debug)]
pub struct Latency {
    /// From a request's complete head to its response's complete head.
    pub request: Histogram<u64>,
    /// From starting a backend connect to its completion.
    pub connect: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            request: new_histogram(),
            connect: new_histogram(),
        }
    }
}

impl Latency {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.connect.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_and_classes_count() {
        let s = Sharded::new(3);
        s.of(0).opened.add(2);
        s.of(2).opened.add(3);
        s.of(1).response(204);
        s.of(1).response(503);
        s.of(1).response(99);
        s.of(1).response(600);
        s.of(7).bytes_in.add(10);
        let t = s.totals();
        assert_eq!(t.opened, 5);
        assert_eq!(t.responses, [0, 1, 0, 0, 1]);
        assert_eq!(t.bytes_in, 10);
    }

    #[test]
    fn peaks_and_moments_take_the_shards_maximum() {
        let s = Sharded::new(2);
        s.of(0).max_connect_us.raise(30);
        s.of(0).max_connect_us.raise(10);
        s.of(1).max_connect_us.raise(20);
        assert_eq!(s.totals().max_connect_us, 30);
        assert_eq!(s.totals().last_session, 0);
        assert_eq!(since_moment(0), None);
        let t0 = Instant::now();
        s.of(1).last_session.stamp(t0);
        s.of(0).last_session.stamp(t0 - Duration::from_secs(1));
        let last = s.totals().last_session;
        assert_eq!(last, moment(t0));
        assert!(since_moment(last).unwrap() < 5.0);
    }

    #[test]
    fn latencies_are_clamped_not_lost() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(7200));
        record(&mut h, Duration::from_millis(5));
        assert_eq!(h.len(), 3);
        assert!(h.max() >= MAX_MICROS * 99 / 100);
    }
}
