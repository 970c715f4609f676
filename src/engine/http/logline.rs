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
    /// The client connection's byte counters (read, written) when this
    /// request began: its line counts the bytes since.
    client_bytes_at_start: (u64, u64),
}

impl RequestLog {
    /// A request beginning when the client connection had counted
    /// `client_bytes`.
    pub(super) fn new(client_bytes: (u64, u64)) -> RequestLog {
        RequestLog {
            line: None,
            client_bytes_at_start: client_bytes,
        }
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
    /// The access line of a request, with what is known now.
    fn access<'a>(
        &self,
        ex: Option<&Exchange>,
        lease: Option<&BackendLease>,
        log: &'a RequestLog,
        since: Instant,
        now: Instant,
    ) -> Access<'a> {
        let (rx, tx) = self.client.bytes();
        let (rx0, tx0) = log.client_bytes_at_start;
        let request = log
            .line
            .as_deref()
            .map(|l| l.split_once(' ').unwrap_or(("-", "-")));
        let base = access::line(&self.service, self.peer, lease.map(|l| &**l.backend()));
        Access {
            version: if ex.is_some_and(|e| !e.request().http11) {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            request,
            bytes: (rx - rx0, tx - tx0),
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
        now: Instant,
    ) {
        sink.access(&Access {
            t_request: Some(ex.timing().request()),
            status: ex.response().map(|r| r.code),
            term: Termination::NORMAL,
            ..self.access(Some(ex), Some(lease), log, ex.timing().start, now)
        });
        self.logged_bytes = self.client.bytes();
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
        sink.access(&Access {
            status: Some(answer.code()),
            term: answer.termination(),
            ..self.access(ex, None, log, since, now)
        });
    }

    /// The access line a closing session still owes: the request in
    /// progress, or the answer it was giving.
    pub(super) fn log_unfinished(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        match &self.stage {
            Stage::Answer(a) => {
                self.log_answer(sink, &a.answer, a.ex.as_deref(), &a.log, a.since, now)
            }
            Stage::Leg(leg) | Stage::Tunnel { leg, .. } => sink.access(&Access {
                term: r.termination(),
                ..self.access(
                    Some(&leg.ex),
                    Some(&leg.up.lease),
                    &leg.log,
                    leg.ex.timing().start,
                    now,
                )
            }),
            _ => {}
        }
    }
}
