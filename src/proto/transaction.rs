//! One request and its response, in no HTTP version's words: the
//! decisions a balancer makes about a transaction whichever front it came
//! on (HTTP/1 today, an HTTP/2 stream next), as HAProxy's `http_ana.c`
//! decides on HTX for every version and pingora's hooks see one
//! `RequestHeader` for h1 and h2 alike.
//!
//! What lives here: the stickiness the request asks for and the cookie the
//! response sets, the forwarding values (`X-Forwarded-*` as values, not
//! lines), the retry and replay rules, timeouts, what becomes of the
//! backend connection, and timing. What a version writes on the wire (the
//! `Connection` line, keep-alive, chunking, drop ranges, Content-Length)
//! is the front's and back's: [`super::http1::front`] and
//! [`super::http1::back`] for HTTP/1.
//!
//! Nothing here reads a socket or a clock: the caller passes the time in.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::http1::errors::Status;

/// The client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Its address.
    pub peer: SocketAddr,
    /// It speaks TLS to us.
    pub tls: bool,
    /// The service's listen port.
    pub port: u16,
    /// It is in the service's `trust_forwarded` prefixes: the
    /// `X-Forwarded-Proto`/`-Port` it sends pass through.
    pub trusted: bool,
}

/// What the request says about itself that the transaction decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    /// Its method may be sent twice (GET, HEAD, PUT, DELETE, OPTIONS...).
    pub idempotent: bool,
    /// The sticky cookie's value, if the client sent one.
    pub sticky: Option<[u8; 16]>,
    /// It logs in with NTLM or Negotiate, which binds a backend connection
    /// to its client.
    pub connection_auth: bool,
    /// It carries one `X-Forwarded-Proto` of its own.
    pub forwarded_proto: bool,
    /// It carries one `X-Forwarded-Port` of its own.
    pub forwarded_port: bool,
}

/// The `X-Forwarded-*` values moirai adds to a request, as values: the
/// back writes them in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// `X-Forwarded-For`: the client's address (an IPv4-mapped IPv6
    /// address as IPv4).
    pub for_ip: IpAddr,
    /// `X-Forwarded-Proto`: whether the client spoke TLS; `None` when a
    /// trusted client's own passes through.
    pub tls: Option<bool>,
    /// `X-Forwarded-Port`; `None` when a trusted client's own passes, or
    /// when its proto does.
    pub port: Option<u16>,
}

/// When the parts of a transaction happened, for its access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The request's first byte.
    pub start: Instant,
    /// Its head was complete.
    pub head: Instant,
    /// How long a new backend connection took (none for a reused one).
    pub connect: Option<Duration>,
    /// The final response head arrived.
    pub response: Option<Instant>,
}

impl Timing {
    /// From the first byte to the complete head.
    pub fn request(&self) -> Duration {
        self.head.saturating_duration_since(self.start)
    }

    /// From the complete request head to the response head.
    pub fn response(&self) -> Option<Duration> {
        self.response
            .map(|t| t.saturating_duration_since(self.head))
    }
}

/// What to do with the client's buffered bytes once the request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Done with this many bytes.
    Consume(usize),
    /// Keep them until the backend answers: the connection was reused and
    /// may turn out dead, and the request may be sent again.
    Hold,
}

/// What to do when the backend connection failed before any response
/// byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Send the request again, from its first byte, on a new connection.
    Resend,
    /// Answer 502.
    BadGateway,
}

/// What becomes of the backend connection after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Kept by this client's connection for its next request.
    Park,
    /// Given to the worker's pool, if the backend is still in service.
    Pool,
    /// Closed.
    Drop,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The client connection stays open for another request.
    pub keep_client: bool,
    /// The backend connection's fate.
    pub backend: Reuse,
}

/// What the backend connection was like when the response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendEnd {
    /// It sent its FIN.
    pub eof: bool,
    /// It sent bytes after the response (never part of another one).
    pub leftover: bool,
    /// An earlier exchange of this client made it private (a
    /// connection-bound login): it never goes to another client.
    pub private: bool,
}

/// What a timeout in the middle of a transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Answer with this, then close.
    Answer(Status),
    /// The backend is silent and the client already has a status line:
    /// close both.
    BackendIdle,
    /// The client is silent: close both.
    ClientIdle,
}

/// One request and its response, as every version sees them.
#[derive(Debug)]
pub struct Transaction {
    req: Request,
    /// The final response head went out: the client has a status.
    status_sent: bool,
    /// The response offers a connection-bound login.
    response_auth: bool,
    /// The backend connection was reused (parked or pooled).
    reused: bool,
    /// The request was already sent once more.
    retried: bool,
    /// Bytes of the request (head and whole body) held by the front until
    /// the backend answers.
    replay: Option<usize>,
    /// When its parts happened.
    pub timing: Timing,
}

impl Transaction {
    /// A transaction for `req`, its first byte at `start`, its head
    /// complete at `now`.
    pub fn new(req: Request, start: Instant, now: Instant) -> Transaction {
        Transaction {
            req,
            status_sent: false,
            response_auth: false,
            reused: false,
            retried: false,
            replay: None,
            timing: Timing {
                start,
                head: now,
                connect: None,
                response: None,
            },
        }
    }

    /// The sticky cookie the client sent, if any.
    pub fn sticky(&self) -> Option<[u8; 16]> {
        self.req.sticky
    }

    /// The forwarding values for a request from `client`. A trusted
    /// client's own proto and port pass through; everyone else's are
    /// replaced. Proto and port describe one hop: with the proxy's proto,
    /// moirai's own port would make `https://host:80`, so it is left out.
    pub fn forwarding(&self, client: &Client) -> Forwarding {
        let proto_kept = client.trusted && self.req.forwarded_proto;
        let port_kept = client.trusted && self.req.forwarded_port;
        Forwarding {
            for_ip: client.peer.ip().to_canonical(),
            tls: (!proto_kept).then_some(client.tls),
            port: (!port_kept && !proto_kept).then_some(client.port),
        }
    }

    /// The backend connection was reused (true) or is new (false).
    pub fn set_reused(&mut self, reused: bool) {
        self.reused = reused;
    }

    /// The request went out, `bytes` of the front's buffer in all,
    /// `whole`: its body with it. The bytes are held for a resend only on
    /// a reused connection, once, for an idempotent request sent whole.
    pub fn request_sent(&mut self, bytes: usize, whole: bool) -> Sent {
        if self.reused && !self.retried && self.req.idempotent && whole {
            self.replay = Some(bytes);
            Sent::Hold
        } else {
            Sent::Consume(bytes)
        }
    }

    /// The backend sent its first bytes: the held request (if any) cannot
    /// be sent again and its bytes are done with.
    pub fn backend_spoke(&mut self) -> Option<usize> {
        self.replay.take()
    }

    /// The backend connection failed before any response byte
    /// (`answered`: some arrived; `head_pending`: the request head is
    /// still being written, so its bytes are all held). It is sent once
    /// more only after a reused connection (which the backend may have
    /// closed while idle), once, for an idempotent method whose bytes are
    /// still held: HAProxy's `retry-on conn-failure empty-response`. A
    /// resend starts the transaction over on a new connection.
    pub fn on_failure(&mut self, answered: bool, head_pending: bool) -> Failure {
        if !self.may_resend(answered, head_pending) {
            return Failure::BadGateway;
        }
        self.retried = true;
        self.reused = false;
        self.replay = None;
        self.response_auth = false;
        Failure::Resend
    }

    /// The question [`Transaction::on_failure`] acts on, without acting.
    pub fn may_resend(&self, answered: bool, head_pending: bool) -> bool {
        self.reused
            && !self.retried
            && !answered
            && self.req.idempotent
            && (head_pending || self.replay.is_some())
    }

    /// A final response head arrived at `now`; `auth`: it offers a
    /// connection-bound login.
    pub fn responded(&mut self, auth: bool, now: Instant) {
        self.timing.response = Some(now);
        self.response_auth = auth;
    }

    /// The sticky cookie to set with the response of a backend named
    /// `cookie`: none when the client already holds that one.
    pub fn cookie_to_set<'a>(&self, cookie: Option<&'a [u8; 16]>) -> Option<&'a [u8; 16]> {
        cookie.filter(|v| self.req.sticky.as_ref() != Some(*v))
    }

    /// The final response head went out.
    pub fn status_went(&mut self) {
        self.status_sent = true;
    }

    /// Whether the client already has a final status line.
    pub fn status_sent(&self) -> bool {
        self.status_sent
    }

    /// Whether this transaction binds its backend connection to its
    /// client: the request logs in with NTLM or Negotiate (our own rule),
    /// or the response offers one of them (HAProxy 2.6's). Such a
    /// connection is never pooled, and the client keeps to its backend so
    /// the login's next steps reach the same connection.
    pub fn connection_bound(&self) -> bool {
        self.req.connection_auth || self.response_auth
    }

    /// Both messages are complete. `keep_client`: the front keeps its
    /// connection for another request; `reusable`: the backend
    /// connection may carry another one (the back's framing says so and
    /// nothing is left on it). Kept on this client connection when both
    /// go on (no pool round trip, no re-registration), pooled when only
    /// the backend does and nothing makes it private (plain or TLS alike:
    /// the pool keeps a TLS connection's state), else closed.
    pub fn finish(&self, keep_client: bool, reusable: bool, backend: BackendEnd) -> Finish {
        let reusable = reusable && !backend.eof && !backend.leftover;
        let backend = if reusable && keep_client {
            Reuse::Park
        } else if reusable && !backend.private && !self.connection_bound() {
            Reuse::Pool
        } else {
            Reuse::Drop
        };
        Finish {
            keep_client,
            backend,
        }
    }

    /// The backend or client went quiet past its timeout
    /// (`backend_idle`: the backend's).
    pub fn on_timeout(&self, backend_idle: bool) -> Timeout {
        match (backend_idle, self.status_sent) {
            (true, false) => Timeout::Answer(Status::GatewayTimeout),
            (true, true) => Timeout::BackendIdle,
            (false, _) => Timeout::ClientIdle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: [u8; 16] = *b"0123456789abcdef";

    fn client(trusted: bool) -> Client {
        Client {
            peer: "[::ffff:192.0.2.9]:40000".parse().unwrap(),
            tls: true,
            port: 443,
            trusted,
        }
    }

    fn tx(req: Request) -> Transaction {
        let now = Instant::now();
        Transaction::new(req, now, now)
    }

    const GET: Request = Request {
        idempotent: true,
        sticky: None,
        connection_auth: false,
        forwarded_proto: false,
        forwarded_port: false,
    };

    #[test]
    fn forwarding_values_replace_an_untrusted_clients_own() {
        let t = tx(Request {
            forwarded_proto: true,
            forwarded_port: true,
            ..GET
        });
        let f = t.forwarding(&client(false));
        assert_eq!(f.for_ip, "192.0.2.9".parse::<IpAddr>().unwrap());
        assert_eq!((f.tls, f.port), (Some(true), Some(443)));
    }

    #[test]
    fn a_trusted_proxys_proto_passes_and_takes_the_port_with_it() {
        let proto = tx(Request {
            forwarded_proto: true,
            ..GET
        });
        assert_eq!(
            (
                proto.forwarding(&client(true)).tls,
                proto.forwarding(&client(true)).port
            ),
            (None, None)
        );
        let port = tx(Request {
            forwarded_port: true,
            ..GET
        });
        let f = port.forwarding(&client(true));
        assert_eq!((f.tls, f.port), (Some(true), None));
    }

    #[test]
    fn only_a_reused_connections_idempotent_whole_request_is_held() {
        let mut t = tx(GET);
        assert_eq!(t.request_sent(10, true), Sent::Consume(10), "new");
        t.set_reused(true);
        assert_eq!(t.request_sent(10, false), Sent::Consume(10), "part");
        assert_eq!(t.request_sent(10, true), Sent::Hold);
        assert_eq!(t.backend_spoke(), Some(10));
        assert_eq!(t.backend_spoke(), None, "once");
        let mut post = tx(Request {
            idempotent: false,
            ..GET
        });
        post.set_reused(true);
        assert_eq!(post.request_sent(10, true), Sent::Consume(10));
    }

    #[test]
    fn a_failure_resends_once_and_only_what_is_held() {
        let mut t = tx(GET);
        assert_eq!(t.on_failure(false, true), Failure::BadGateway, "new conn");
        let mut t = tx(GET);
        t.set_reused(true);
        assert_eq!(t.on_failure(true, true), Failure::BadGateway, "answered");
        assert_eq!(t.on_failure(false, false), Failure::BadGateway, "not held");
        assert_eq!(t.request_sent(10, true), Sent::Hold);
        assert_eq!(t.on_failure(false, false), Failure::Resend);
        // The resend is on a new connection: nothing is held, and a
        // second failure is a 502.
        assert_eq!(t.request_sent(10, true), Sent::Consume(10));
        t.set_reused(true);
        assert_eq!(t.on_failure(false, true), Failure::BadGateway, "twice");
    }

    #[test]
    fn the_cookie_is_set_unless_the_client_holds_it() {
        let t = tx(GET);
        assert_eq!(t.cookie_to_set(Some(&COOKIE)), Some(&COOKIE));
        assert_eq!(t.cookie_to_set(None), None);
        let held = tx(Request {
            sticky: Some(COOKIE),
            ..GET
        });
        assert_eq!(held.cookie_to_set(Some(&COOKIE)), None);
        let other = *b"fedcba9876543210";
        assert_eq!(held.cookie_to_set(Some(&other)), Some(&other));
    }

    #[test]
    fn finish_parks_pools_or_drops() {
        let t = tx(GET);
        let end = BackendEnd::default();
        let f = |keep, reusable, end| t.finish(keep, reusable, end).backend;
        assert_eq!(f(true, true, end), Reuse::Park);
        assert_eq!(f(false, true, end), Reuse::Pool);
        assert_eq!(f(true, false, end), Reuse::Drop);
        let eof = BackendEnd { eof: true, ..end };
        let leftover = BackendEnd {
            leftover: true,
            ..end
        };
        assert_eq!(f(true, true, eof), Reuse::Drop);
        assert_eq!(f(true, true, leftover), Reuse::Drop);
        let private = BackendEnd {
            private: true,
            ..end
        };
        assert_eq!(f(true, true, private), Reuse::Park);
        assert_eq!(f(false, true, private), Reuse::Drop);
        assert!(!t.finish(false, true, end).keep_client);
    }

    #[test]
    fn a_login_on_either_side_binds_the_connection() {
        let mut t = tx(GET);
        assert!(!t.connection_bound());
        t.responded(true, Instant::now());
        assert!(t.connection_bound());
        assert_eq!(
            t.finish(false, true, BackendEnd::default()).backend,
            Reuse::Drop
        );
        let asks = tx(Request {
            connection_auth: true,
            ..GET
        });
        assert!(asks.connection_bound());
    }

    #[test]
    fn timeouts_answer_only_before_a_status() {
        let mut t = tx(GET);
        assert_eq!(t.on_timeout(true), Timeout::Answer(Status::GatewayTimeout));
        assert_eq!(t.on_timeout(false), Timeout::ClientIdle);
        t.status_went();
        assert_eq!(t.on_timeout(true), Timeout::BackendIdle);
        assert_eq!(t.on_timeout(false), Timeout::ClientIdle);
    }

    #[test]
    fn timing_measures_from_the_first_byte_and_the_head() {
        let start = Instant::now();
        let head = start + Duration::from_millis(5);
        let mut t = Transaction::new(GET, start, head);
        assert_eq!(t.timing.request(), Duration::from_millis(5));
        assert_eq!(t.timing.response(), None);
        t.responded(false, head + Duration::from_millis(7));
        assert_eq!(t.timing.response(), Some(Duration::from_millis(7)));
    }
}
