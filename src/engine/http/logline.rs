//! Access lines of an HTTP connection: one per request (a finished leg,
//! an answer of the balancer's own, a request cut by the close), each
//! counting the bytes and times of its own request.

use std::time::Instant;

use super::{HttpSession, Stage};
use crate::engine::access;
use crate::engine::conn::Transport;
use crate::engine::step::CloseReason;
use crate::engine::syslog::Sink;
use crate::proto::answer::Answer;
use crate::proto::http1::exchange::Exchange;
use crate::proto::syslog::{Access, Termination};
use crate::snapshot::BackendLease;

/// What a request's access line needs besides its exchange.
#[derive(Debug, Default)]
pub(super) struct RequestLog {
    /// "METHOD target", kept only when access lines are sent (at most
    /// 32 + 1 + 1024 bytes). A boxed `str`, not a `String`: it never
    /// grows once made, and a leg is the largest stage, so every
    /// connection, idle ones included, would carry the capacity word.
    line: Option<Box<str>>,
    /// HTTP/1: the client connection's byte counters (read, written) when
    /// this request began: its line counts the bytes since. An HTTP/2
    /// stream: its own bytes (read, written), counted as they move.
    bytes: (u64, u64),
}

/// Which bytes an access line counts, and in which version's name.
#[derive(Debug, Clone, Copy)]
pub(super) enum Counted {
    /// An HTTP/1 request: the connection's bytes since it began.
    Http1,
    /// An HTTP/2 stream: its own.
    Http2,
}

impl RequestLog {
    /// A request beginning when the client connection had counted
    /// `client_bytes`.
    pub(super) fn new(client_bytes: (u64, u64)) -> RequestLog {
        RequestLog {
            line: None,
            bytes: client_bytes,
        }
    }

    /// An HTTP/2 stream's: its bytes count from zero.
    pub(super) fn stream() -> RequestLog {
        RequestLog::default()
    }

    /// An HTTP/2 stream read `rx` more bytes and wrote `tx`.
    pub(super) fn count(&mut self, rx: u64, tx: u64) {
        self.bytes.0 += rx;
        self.bytes.1 += tx;
    }

    /// Keeps "METHOD target" of the head at the front of `head`.
    pub(super) fn keep_request_line(&mut self, head: &[u8]) {
        let first = head
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(&[]);
        let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let method = parts.next().unwrap_or(b"-");
        let target = parts.next().unwrap_or(b"-");
        let mut line = String::with_capacity(method.len().min(32) + 1 + target.len().min(1024));
        line.push_str(&String::from_utf8_lossy(&method[..method.len().min(32)]));
        line.push(' ');
        line.push_str(&String::from_utf8_lossy(&target[..target.len().min(1024)]));
        self.line = Some(line.into_boxed_str());
    }
}

impl<S: Transport> HttpSession<S> {
    /// The access line of a request, with what is known now, its bytes
    /// counted as `counted` says.
    pub(super) fn access_counted<'a>(
        &self,
        counted: Counted,
        ex: Option<&Exchange>,
        lease: Option<&BackendLease>,
        log: &'a RequestLog,
        since: Instant,
        now: Instant,
    ) -> Access<'a> {
        let (bytes, version) = match counted {
            Counted::Http1 => {
                let (rx, tx) = self.client.bytes();
                let (rx0, tx0) = log.bytes;
                let v = if ex.is_some_and(|e| !e.request().http11) {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                };
                ((rx - rx0, tx - tx0), v)
            }
            Counted::Http2 => (log.bytes, "HTTP/2.0"),
        };
        let request = log
            .line
            .as_deref()
            .map(|l| l.split_once(' ').unwrap_or(("-", "-")));
        let base = access::line(&self.service, self.peer, lease.map(|l| &**l.backend()));
        Access {
            version,
            request,
            bytes,
            t_connect: ex.and_then(|e| e.timing().connect),
            t_response: ex.and_then(|e| e.timing().response()),
            t_total: now.saturating_duration_since(since),
            ..base
        }
    }

    /// Sends the access line of a completed request; the next request
    /// counts its bytes from here.
    pub(super) fn log_request(
        &mut self,
        sink: &mut Sink,
        ex: &Exchange,
        lease: &BackendLease,
        log: &RequestLog,
        counted: Counted,
        now: Instant,
    ) {
        let since = ex.timing().start;
        sink.access(&Access {
            t_request: Some(ex.timing().request()),
            status: ex.response().map(|r| r.code),
            term: Termination::NORMAL,
            ..self.access_counted(counted, Some(ex), Some(lease), log, since, now)
        });
        if let Counted::Http1 = counted {
            self.logged_bytes = self.client.bytes();
        }
    }

    /// Sends the access line of the balancer's own answer.
    pub(super) fn log_answer(
        &self,
        sink: &mut Sink,
        answer: &Answer,
        ex: Option<&Exchange>,
        log: &RequestLog,
        since: Instant,
        now: Instant,
    ) {
        self.log_answer_counted(sink, Counted::Http1, answer, ex, log, since, now);
    }

    /// [`HttpSession::log_answer`], its bytes `counted` so.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn log_answer_counted(
        &self,
        sink: &mut Sink,
        counted: Counted,
        answer: &Answer,
        ex: Option<&Exchange>,
        log: &RequestLog,
        since: Instant,
        now: Instant,
    ) {
        sink.access(&Access {
            status: Some(answer.code()),
            term: answer.termination(),
            ..self.access_counted(counted, ex, None, log, since, now)
        });
    }

    /// The access line of a request cut before it finished, for `r`:
    /// its exchange, the lease on its backend, its facts.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn log_cut(
        &self,
        sink: &mut Sink,
        counted: Counted,
        (ex, lease, log): (&Exchange, &BackendLease, &RequestLog),
        r: CloseReason,
        now: Instant,
    ) {
        let since = ex.timing().start;
        sink.access(&Access {
            term: r.termination(),
            ..self.access_counted(counted, Some(ex), Some(lease), log, since, now)
        });
    }

    /// The access line a closing session still owes: the request in
    /// progress, or the answer it was giving.
    pub(super) fn log_unfinished(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        match &self.stage {
            Stage::Answer(a) => {
                self.log_answer(sink, &a.answer, a.ex.as_deref(), &a.log, a.since, now)
            }
            Stage::Leg(leg) | Stage::Tunnel { leg, .. } => {
                let request = (&*leg.ex, &leg.up.lease, &leg.log);
                self.log_cut(sink, Counted::Http1, request, r, now)
            }
            Stage::H2(h2) => self.h2_log_close(h2, sink, r, now),
            _ => {}
        }
    }
}
