//! Structure-aware: a client connection driven by frames (valid, odd and
//! raw), reads cut anywhere, the clock moving, and a front that answers,
//! resets, releases data and shuts down. Invariants:
//! - the output is always whole frames no larger than the client allows;
//! - DATA ranges lie inside the input they came from, and only on streams
//!   that a Request opened;
//! - requests come on odd, increasing streams, never more open than our
//!   MAX_CONCURRENT_STREAMS;
//! - once `receive` fails it fails the same way for good, and a GOAWAY
//!   is the last frame written.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moirai::proto::h2::conn::{Config, Connection, Event};
use moirai::proto::h2::frame::{self, Frame, Header, Kind, Priority, HEADER_LEN};
use moirai::proto::h2::hpack::{self, Field};
use moirai::proto::h2::limits::Limits;
use moirai::proto::h2::settings::Ours;
use moirai::proto::h2::{ErrorCode, StreamId, PREFACE};

#[derive(Arbitrary, Debug)]
enum Op {
    Headers {
        stream: u8,
        fields: Vec<(u8, u8)>,
        end_stream: bool,
        end_headers: bool,
        pad: Option<u8>,
        priority: Option<u8>,
    },
    Continuation {
        stream: u8,
        block: Vec<u8>,
        end_headers: bool,
    },
    Data {
        stream: u8,
        len: u16,
        end_stream: bool,
        pad: Option<u8>,
    },
    Rst {
        stream: u8,
        code: u8,
    },
    WindowUpdate {
        stream: u8,
        increment: u32,
    },
    Settings {
        params: Vec<(u8, u32)>,
        ack: bool,
    },
    Ping {
        ack: bool,
        payload: u64,
    },
    GoAway {
        last: u8,
    },
    Priority {
        stream: u8,
        dep: u8,
    },
    Raw(Vec<u8>),
    Advance(u16),
    Respond {
        stream: u8,
        body: u16,
        end: bool,
    },
    Reset {
        stream: u8,
    },
    Release {
        stream: u8,
        n: u16,
    },
    Shutdown,
    Write(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    skip_preface: bool,
    cut: u8,
    small_limits: bool,
    ops: Vec<Op>,
}

const NAMES: [(&str, &str); 10] = [
    (":method", "GET"),
    (":method", "POST"),
    (":scheme", "https"),
    (":path", "/"),
    (":authority", "example.com"),
    ("content-length", "3"),
    ("cookie", "a=b"),
    ("x-long", "0123456789012345678901234567890123456789"),
    ("te", "trailers"),
    ("Upper", "x"),
];

fn sid(b: u8) -> StreamId {
    StreamId::new(u32::from(b))
}

fn bytes_of(op: &Op) -> Vec<u8> {
    let mut out = Vec::new();
    match op {
        Op::Headers {
            stream,
            fields,
            end_stream,
            end_headers,
            pad,
            priority,
        } => {
            let mut block = Vec::new();
            for (n, flags) in fields {
                let (name, value) = NAMES[usize::from(*n) % NAMES.len()];
                if flags & 1 == 1 {
                    // A literal with incremental indexing, to move the table.
                    block.push(0x40);
                    hpack::write_integer(&mut block, 0, 7, name.len());
                    block.extend_from_slice(name.as_bytes());
                    hpack::write_integer(&mut block, 0, 7, value.len());
                    block.extend_from_slice(value.as_bytes());
                } else if flags & 2 == 2 {
                    hpack::write_integer(&mut block, 0x80, 7, 62 + usize::from(flags >> 2) % 4);
                } else {
                    hpack::encode_field(&mut block, name.as_bytes(), value.as_bytes());
                }
            }
            Frame::Headers {
                stream: sid(*stream),
                end_stream: *end_stream,
                end_headers: *end_headers,
                priority: priority.map(|d| Priority {
                    exclusive: false,
                    dependency: sid(d),
                    weight: 16,
                }),
                fragment: &block,
                pad: *pad,
            }
            .encode(&mut out);
        }
        Op::Continuation {
            stream,
            block,
            end_headers,
        } => Frame::Continuation {
            stream: sid(*stream),
            end_headers: *end_headers,
            fragment: block,
        }
        .encode(&mut out),
        Op::Data {
            stream,
            len,
            end_stream,
            pad,
        } => Frame::Data {
            stream: sid(*stream),
            end_stream: *end_stream,
            data: &vec![b'd'; usize::from(*len) % 20_000],
            pad: *pad,
        }
        .encode(&mut out),
        Op::Rst { stream, code } => frame::write_rst_stream(
            &mut out,
            sid(*stream),
            ErrorCode::from_u32(u32::from(*code)),
        ),
        Op::WindowUpdate { stream, increment } => {
            frame::write_window_update(&mut out, sid(*stream), *increment)
        }
        Op::Settings { params, ack } => {
            if *ack {
                frame::write_settings_ack(&mut out);
            } else {
                let p: Vec<(u16, u32)> = params
                    .iter()
                    .map(|&(i, v)| (u16::from(i % 10), v))
                    .collect();
                frame::write_settings(&mut out, &p);
            }
        }
        Op::Ping { ack, payload } => frame::write_ping(&mut out, *ack, payload.to_be_bytes()),
        Op::GoAway { last } => frame::write_goaway(&mut out, sid(*last), ErrorCode::NoError, b""),
        Op::Priority { stream, dep } => Frame::Priority {
            stream: sid(*stream),
            priority: Priority {
                exclusive: true,
                dependency: sid(*dep),
                weight: 1,
            },
        }
        .encode(&mut out),
        Op::Raw(b) => out.extend_from_slice(b),
        _ => {}
    }
    out
}

/// Whole frames, none over `max`; returns their headers.
fn frames(out: &[u8], max: u32) -> Vec<Header> {
    let mut at = 0;
    let mut hs = Vec::new();
    while at < out.len() {
        let h = Header::parse(&out[at..]).expect("output ends inside a frame header");
        assert!(h.length <= max, "frame of {} over {max}", h.length);
        at += HEADER_LEN + h.length as usize;
        assert!(at <= out.len(), "output ends inside a frame");
        hs.push(h);
    }
    hs
}

fuzz_target!(|input: Input| {
    let limits = if input.small_limits {
        Limits {
            max_continuations: 2,
            max_block_bytes: 512,
            max_resets_per_window: 4,
            max_stream_errors: 4,
            max_pings_per_window: 4,
            max_queued_control: 8,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let ours = Ours {
        max_concurrent_streams: 4,
        ..Ours::default()
    };
    let mut c = Connection::new(Config { ours, limits });
    let mut now = Instant::now();
    let mut failed = None;
    // Frames written under a larger SETTINGS_MAX_FRAME_SIZE may still be
    // queued after the client lowers it.
    let mut allowed = frame::DEFAULT_MAX_FRAME_SIZE;
    let mut last_request = 0u32;
    let mut opened = BTreeSet::new();
    let mut pending = Vec::new();
    if !input.skip_preface {
        pending.extend_from_slice(PREFACE);
        frame::write_settings(&mut pending, &[]);
    }
    let cut = usize::from(input.cut).max(1);
    for op in &input.ops {
        match op {
            Op::Advance(ms) => now += Duration::from_millis(u64::from(*ms)),
            Op::Respond { stream, body, end } => {
                let id = sid(*stream);
                let _ = c.send_headers(id, &[Field::new(b":status", b"200")], false);
                let _ = c.send_data(id, &vec![b'r'; usize::from(*body)], *end);
            }
            Op::Reset { stream } => {
                let _ = c.reset(sid(*stream), ErrorCode::Cancel);
            }
            Op::Release { stream, n } => c.release(sid(*stream), u32::from(*n)),
            Op::Shutdown => c.shutdown(),
            Op::Write(n) => {
                frames(c.output(), allowed);
                let n = usize::from(*n).min(c.output().len());
                // Write whole frames only, as the check above reads them.
                let mut at = 0;
                while let Some(h) = Header::parse(&c.output()[at..]) {
                    let next = at + HEADER_LEN + h.length as usize;
                    if next > n {
                        break;
                    }
                    at = next;
                }
                c.written(at);
            }
            _ => pending.extend(bytes_of(op)),
        }
        // Feed what is pending, cut into reads.
        let input_bytes = std::mem::take(&mut pending);
        for chunk in input_bytes.chunks(cut) {
            let r = c.receive(chunk, now);
            allowed = allowed.max(c.peer_settings().max_frame_size);
            if let Some(e) = failed {
                assert_eq!(r, Err(e), "a failed connection changed its mind");
            }
            let events: Vec<Event> = c.events().collect();
            for e in events {
                match e {
                    Event::Request { stream, .. } | Event::RequestTooLarge { stream, .. } => {
                        assert!(stream.is_client_initiated());
                        assert!(stream.get() > last_request);
                        last_request = stream.get();
                        opened.insert(stream);
                    }
                    Event::Data { stream, range } => {
                        assert!(range.end <= chunk.len() && range.start < range.end);
                        assert!(opened.contains(&stream), "data on a stream never opened");
                        c.release(stream, range.len() as u32);
                    }
                    Event::Trailers { stream, .. } | Event::EndStream { stream } => {
                        assert!(opened.contains(&stream));
                    }
                    _ => {}
                }
            }
            assert!(c.active_streams() <= 4);
            if let Err(e) = r {
                if failed.is_none() {
                    let hs = frames(c.output(), allowed);
                    assert_eq!(hs.last().map(|h| h.kind), Some(Kind::GoAway));
                    assert!(c.is_done());
                }
                failed = Some(e);
            }
        }
    }
    frames(c.output(), allowed);
});
