//! Protocols without I/O. Each takes what was read and says what to write
//! and when to close; the engine does the reads and writes. That is what
//! makes them testable byte for byte and fuzzable.
//!
//! - [`pipe`]: byte passthrough with half-close bookkeeping (`tcp`).
//! - [`proxy_v2`]: the PROXY protocol v2 preface (`tcp-proxy-v2`).
//! - [`http1`]: HTTP/1.x heads, framing, and the HTTP/1 front's words.
//! - [`h2`]: HTTP/2 frames, HPACK, streams and flow control, and the
//!   translation to and from HTTP/1.1.
//! - [`transaction`]: one request and its response, in no version's
//!   words: stickiness, forwarding values, retries, timeouts, reuse.
//! - [`answer`]: what the balancer answers itself, in no version's words.
//! - [`cookie`]: the sticky-session cookie.
//! - [`syslog`]: RFC 5424 access and event lines.
//! - [`health`]: the HTTP health-check request and its verdict.
//! - [`token`]: RFC 9110 tokens, the bytes field names are made of.

pub mod answer;
pub mod cookie;
pub mod h2;
pub mod health;
pub mod http1;
pub mod pipe;
pub mod proxy_v2;
pub mod syslog;
pub mod token;
pub mod transaction;
