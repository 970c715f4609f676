//! The front stages of the HTTP/1 connection: reading a request head, and
//! the balancer's own answers (errors, ACME challenges, redirects), which
//! need no backend.

use std::io::IoSlice;
use std::time::Instant;

use super::logline::RequestLog;
use super::{
    answering, follow_current, h2, recycle, Answering, Flow, HttpSession, Parked, Stage, Turn,
    LINGER,
};
use crate::engine::buffer::Buffer;
use crate::engine::conn::{release_if_empty, Io, Transport};
use crate::engine::session::Session;
use crate::engine::step::{CloseReason, Ctx};
use crate::engine::token::Side;
use crate::proto::answer::Answer;
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::Exchange;
use crate::proto::http1::front;
use crate::proto::http1::request::{self, RequestHead};
use crate::proto::http1::HeadError;
use crate::proto::transaction::Client;

impl<S: Transport> HttpSession<S> {
    /// Reads until a request head is complete, then answers it here or
    /// begins its leg.
    pub(super) fn read_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        since: Option<Instant>,
        parked: Option<Parked<S>>,
    ) -> Turn<S> {
        let progress = match self.fill_client(ctx) {
            Ok(p) => p,
            Err(r) => return (Stage::ReadHead { since, parked }, Flow::Close(r)),
        };
        let pending = self.to_backend.as_ref().map_or(&[][..], Buffer::pending);
        if self.served == 0 && self.service.spec.h2 {
            // HTTP/2 is chosen before the first request: by the TLS
            // handshake (ALPN), or in cleartext by the preface.
            let cleartext = !self.client.is_tls();
            match h2::preface(pending) {
                _ if self.client.alpn_is_h2() => return self.start_h2(ctx),
                Some(true) if cleartext => return self.start_h2(ctx),
                Some(false) if cleartext && !self.client_eof && !pending.is_empty() => {
                    return (
                        Stage::ReadHead {
                            since: Some(since.unwrap_or(ctx.now)),
                            parked,
                        },
                        Flow::progress(progress),
                    )
                }
                _ => {}
            }
        }
        if pending.is_empty() {
            let flow = if self.client_eof {
                Flow::Close(CloseReason::Done)
            } else {
                Flow::progress(progress)
            };
            return (Stage::ReadHead { since, parked }, flow);
        }
        let since = since.unwrap_or(ctx.now);
        let blank = request::leading_empty_lines(pending);
        if blank > 0 {
            // Never forwarded (RFC 9112 §2.2).
            if let Some(b) = self.to_backend.as_mut() {
                b.consumed(blank);
            }
            release_if_empty(&mut self.to_backend, ctx.pool);
            return (
                Stage::ReadHead {
                    since: Some(since),
                    parked,
                },
                Flow::Progress,
            );
        }
        let full = self.to_backend.as_ref().is_some_and(Buffer::is_full);
        let mut s = ctx.scratch.pop().unwrap_or_default();
        let head = match request::parse(pending, &mut s.req_drop, &mut s.req_inject) {
            Ok(Some(head)) => {
                self.service.stats.of(self.worker).requests.add(1);
                head
            }
            unfinished => {
                recycle(ctx.scratch, s);
                let waiting = Stage::ReadHead {
                    since: Some(since),
                    parked,
                };
                return match unfinished {
                    Ok(_) if full => self.fail_connection(Status::HeaderTooLarge, since),
                    Ok(_) if self.client_eof => (waiting, Flow::Close(CloseReason::Done)),
                    Ok(_) => (waiting, Flow::progress(progress)),
                    Err(e) => self.refuse_head(e, since),
                };
            }
        };
        let mut log = RequestLog::new(self.logged_bytes);
        if ctx.syslog.is_some() {
            log.keep_request_line(pending);
        }
        // Every request meets the port's configuration now: its backends
        // (HAProxy balances each request over the current set) and its
        // `redirect`, `trust_forwarded` and ACME answers.
        let current = follow_current(&mut self.service, ctx);
        let client = self.client_facts();
        if let Some(answer) = self.local_answer(pending, &head, &client) {
            recycle(ctx.scratch, s);
            self.count_answer(&answer);
            return (
                Stage::Answer(answering(answer, None, log, since)),
                Flow::Progress,
            );
        }
        let ex = exchange(ctx, Exchange::begin(head, &client, s, since, ctx.now));
        if !current {
            // The port serves something else now, or nothing: this
            // connection belongs to a configuration that is gone.
            return self.refuse(Status::Unavailable, ex, log);
        }
        self.choose_backend(ctx, ex, log, parked)
    }

    /// What the transaction needs to know of this client.
    pub(super) fn client_facts(&self) -> Client {
        Client {
            peer: self.peer,
            tls: self.client.is_tls(),
            port: self.port(),
            trusted: self.service.spec.trusts(self.peer.ip()),
        }
    }

    /// Counts an answer of the balancer's own that no backend was asked
    /// for.
    pub(super) fn count_answer(&self, answer: &Answer) {
        let c = self.service.stats.of(self.worker);
        c.response(answer.code());
        match answer {
            Answer::Redirect { .. } => {
                c.redirects.add(1);
                c.intercepted.add(1);
            }
            Answer::Challenge(_) => c.intercepted.add(1),
            Answer::Error(status) => c.own[status.index()].add(1),
        }
    }

    /// Requests the balancer answers itself, before any backend: ACME
    /// challenges, then a redirecting service's requests (unless a trusted
    /// proxy received them over https: proxied, no redirect loop behind a
    /// CDN).
    pub(super) fn local_answer(
        &self,
        pending: &[u8],
        head: &RequestHead,
        client: &Client,
    ) -> Option<Answer> {
        match (self.service.acme.is_empty(), front::acme_token(pending)) {
            (false, Some(token)) => Some(Answer::acme(self.service.acme.get(token))),
            _ => self.service.spec.redirect.and_then(|port| {
                let https_before = client.trusted
                    && head
                        .forwarded_proto
                        .as_ref()
                        .is_some_and(|(_, https)| *https);
                (!https_before).then(|| front::redirect(pending, head, port.get()))
            }),
        }
    }

    /// A request head that cannot be served: 431, 501 or 400.
    pub(super) fn refuse_head(&mut self, e: HeadError, since: Instant) -> Turn<S> {
        let status = match e {
            HeadError::TooLarge => Status::HeaderTooLarge,
            HeadError::NotImplemented(_) => Status::NotImplemented,
            HeadError::Malformed(why) => {
                log::debug!(
                    "http: port {}: bad request from {}: {why}",
                    self.port(),
                    self.peer
                );
                Status::BadRequest
            }
        };
        self.fail_connection(status, since)
    }

    /// Sends (more of) the balancer's own answer, then its access line,
    /// then lingers.
    pub(super) fn answer(&mut self, ctx: &mut Ctx<'_, S>, mut a: Answering) -> Turn<S> {
        if a.sent < a.out.len() {
            let flow = match self.client.send(&[IoSlice::new(&a.out[a.sent..])], ctx.now) {
                Io::Moved(n) | Io::Drained(n) => {
                    a.sent += n;
                    Flow::Progress
                }
                Io::Blocked => Flow::Wait,
                Io::Eof | Io::Failed => Flow::Close(CloseReason::Reset(Side::Client)),
            };
            return (Stage::Answer(a), flow);
        }
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            self.log_answer(sink, &a.answer, a.ex.as_deref(), &a.log, a.since, ctx.now);
        }
        let _ = self.client.shutdown_write();
        (
            Stage::Linger {
                until: ctx.now + LINGER,
            },
            Flow::Progress,
        )
    }
}

/// A new exchange, in the allocation of one that finished if the worker
/// keeps one.
pub(super) fn exchange<S>(ctx: &mut Ctx<'_, S>, ex: Exchange) -> Box<Exchange> {
    match ctx.exchanges.pop() {
        Some(mut spare) => {
            *spare = ex;
            spare
        }
        None => Box::new(ex),
    }
}
