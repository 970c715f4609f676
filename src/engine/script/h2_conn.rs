//! The HTTP/2 front's connection, scripted: its drain and GOAWAYs, its
//! timeouts and rest, the limits that end it, and `h2:off`. The harness
//! is `h2.rs`'s.

use super::h2::{get, ok, H2};
use super::http::Http;
use super::*;
use crate::proto::h2::testkit::{headers, ping, GET, POST};
use crate::proto::h2::{ErrorCode, PREFACE};

#[test]
fn a_drain_finishes_the_streams_in_flight_then_closes() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    // As the worker drains: the flag, then a run, since the GOAWAY goes
    // now.
    c.t.s.set_draining();
    assert!(c.t.s.announces_drain());
    assert_eq!(c.t.s.drive(&mut c.t.h.ctx()), Step::Open);
    assert_eq!(c.goaways(), [(0x7fff_ffff, ErrorCode::NoError)]);
    // The client answers the shutdown's PING: the final GOAWAY names
    // stream 1.
    c.send(&ping(true, *b"moirai:g"));
    assert_eq!(c.goaways().last(), Some(&(1, ErrorCode::NoError)));
    // Stream 1 finishes; then the connection closes.
    let step = c.answer(&b, &ok("bye"));
    c.lingers(step);
    assert_eq!(c.response(1).body, b"bye");
}

#[test]
fn an_idle_connection_drains_with_goaway_and_closes() {
    let mut c = H2::new(false);
    c.t.s.set_draining();
    assert_eq!(c.t.s.drive(&mut c.t.h.ctx()), Step::Open);
    assert_eq!(c.goaways(), [(0x7fff_ffff, ErrorCode::NoError)]);
    // A request already on its way is still served... (none here); the
    // PING's answer brings the final GOAWAY and the close.
    let step = c.send(&ping(true, *b"moirai:g"));
    c.lingers(step);
    assert_eq!(c.goaways().last(), Some(&(0, ErrorCode::NoError)));
}

#[test]
fn a_connection_error_ends_every_stream_with_a_goaway() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(3, "/a"));
    c.connect(&b);
    // A stream id going backwards is a connection error.
    let step = c.send(&get(1, "/again"));
    c.lingers(step);
    let g = c.goaways();
    assert_eq!(g.last(), Some(&(3, ErrorCode::Protocol)), "{g:?}");
    assert_eq!(c.legs(), 0);
}

#[test]
fn an_idle_connection_says_goaway_at_the_client_timeout() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, &ok("a"));
    c.t.h
        .later(c.t.s.service().timeouts.client + Duration::from_secs(1));
    let step = c.t.timer();
    c.lingers(step);
    assert_eq!(c.goaways(), [(1, ErrorCode::NoError)]);
}

/// A connection with no stream left gives its vectors back at once
/// (its deadline stays the idle timeout), and its next request finds them
/// again.
#[test]
fn a_connection_between_bursts_rests_then_serves_again() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, &ok("a"));
    assert_eq!(c.response(1).status(), "200");
    let client = c.t.s.service().timeouts.client;
    let now = c.t.h.ctx().now;
    assert_eq!(c.t.s.deadline(), now + client, "the idle timeout");
    c.send(&get(3, "/b"));
    c.answer(&b, &ok("b"));
    let r = c.response(3);
    assert_eq!((r.status(), &r.body[..], r.ended), ("200", &b"b"[..], true));
    assert_eq!(c.t.h.net.dialed.len(), 1, "its kept backend connection");
    assert!(c.goaways().is_empty());
}

#[test]
fn h2_off_leaves_the_preface_to_http1() {
    let mut t = Http::with(Harness::new(
        "http://80:backend.example:8080{h2:off}",
        false,
    ));
    t.send(PREFACE);
    assert!(
        t.client.seen().starts_with("HTTP/1.1 "),
        "{}",
        t.client.seen()
    );
}

#[test]
fn a_flood_ends_the_connection_and_counts_its_limit_and_code() {
    use crate::proto::h2::limits::Limit;
    let mut c = H2::new(false);
    let flood: Vec<u8> = (0..150u8).flat_map(|i| ping(false, [i; 8])).collect();
    let step = c.send(&flood);
    c.lingers(step);
    assert_eq!(
        c.goaways().last().map(|g| g.1),
        Some(ErrorCode::EnhanceYourCalm)
    );
    let t = c.t.s.service().stats.totals();
    assert_eq!(t.h2_limits[Limit::PingRate.index()], 1);
    assert_eq!(t.h2_errors[ErrorCode::EnhanceYourCalm.to_u32() as usize], 1);
    // The HTTP/2 stage ended when the GOAWAY went; the connection
    // lingers, and its release counts nothing twice.
    assert_eq!((t.h2_connections, t.h2_closed), (1, 1));
    c.t.s.release(&mut c.t.h.pool, &mut c.t.h.legs);
    assert_eq!(c.t.s.service().stats.totals().h2_closed, 1);
}

/// What an idle HTTP/2 connection costs beyond an HTTP/1 one is its
/// boxed stage: this keeps it from growing unnoticed (#33 asks for half
/// of HAProxy's memory per idle h2 connection).
#[test]
fn an_idle_h2_stage_stays_small() {
    use crate::sys::net::TcpStream;
    let size = std::mem::size_of::<crate::engine::http::h2::H2<TcpStream>>();
    assert!(size <= 1024, "H2 is {size} bytes");
}

/// MadeYouReset through the front: requests and trailers only the front
/// finds malformed are stream errors like the codec's, and a stream of
/// them ends the connection at the same limit.
#[test]
fn malformed_requests_and_trailers_meet_the_stream_error_limit() {
    use crate::proto::h2::limits::{Limit, Limits};
    let max = Limits::default().max_stream_errors as u32;
    // Uppercase names: malformed once decoded (RFC 9113 §8.2.1).
    let mut c = H2::new(false);
    let mut bad = GET.to_vec();
    bad.push(("X-Upper", "1"));
    let all: Vec<u8> = (0..max)
        .flat_map(|i| headers(2 * i + 1, &bad, true))
        .collect();
    assert_eq!(c.send(&all), Step::Open, "up to the limit, stream errors");
    assert_eq!(c.response(1).reset, Some(ErrorCode::Protocol));
    let step = c.send(&headers(2 * max + 1, &bad, true));
    c.lingers(step);
    assert_eq!(
        c.goaways().last().map(|g| g.1),
        Some(ErrorCode::EnhanceYourCalm)
    );
    let t = c.t.s.service().stats.totals();
    assert_eq!(t.h2_limits[Limit::StreamErrors.index()], 1);
    assert!(c.t.h.net.dialed.is_empty(), "none reached a backend");

    // Trailers with a pseudo-header, each after a request that went to a
    // backend: counted the same way.
    let mut c = H2::new(false);
    for i in 0..=max {
        let id = 2 * i + 1;
        let b = c.t.h.backend();
        c.send(&headers(id, &POST, false));
        c.connect(&b);
        let step = c.send(&headers(id, &[(":path", "/x")], true));
        if i < max {
            assert_eq!(step, Step::Open);
            assert_eq!(c.response(id).reset, Some(ErrorCode::Protocol));
        } else {
            c.lingers(step);
        }
    }
}
