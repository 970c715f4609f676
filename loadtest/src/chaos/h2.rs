//! The soak's HTTP/2 clients: one kept connection per class (ALPN `h2`
//! over TLS, or the cleartext preface), and at each tick a batch of one
//! to four concurrent streams, GETs and uploads mixed, each checked as
//! the HTTP/1 clients check theirs (status, the backend that answered,
//! the method, path, length and CRC-32 it saw). Frames are written and
//! read with moirai's own codec parts (`proto::h2::frame`, `hpack`):
//! the client side needs only the writers and a decoder.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use moirai::proto::h2::frame::{self, flags, Header, Kind, HEADER_LEN};
use moirai::proto::h2::hpack::{self, Decoder, ListLimits};
use moirai::proto::h2::{StreamId, PREFACE};

use super::clients::{body_matches, connect, from_pool, io_fail, paced, period, tls_stream};
use super::clients::{Fail, Io, Shared};
use super::clients::{Target, DEADLINE};
use super::rng::Rng;

/// The window we give the server: every response fits without updates.
const WINDOW: u32 = 1 << 24;
/// The largest upload body.
const MAX_UPLOAD: u64 = 60 * 1024;

/// One HTTP/2 connection, past both prefaces.
struct H2Conn {
    io: Box<dyn Io>,
    port: u16,
    next_id: u32,
    /// The server's windows for what we send: the connection's, and the
    /// initial one of each stream.
    send_window: i64,
    initial: i64,
    dec: Decoder,
    /// The server said GOAWAY: no new stream on this connection.
    going: bool,
}

/// A stream in flight: what it sent, what came back.
struct InFlight {
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
    sent: usize,
    window: i64,
    status: u16,
    got: Vec<u8>,
    done: bool,
    reset: Option<u32>,
}

/// Batches of streams at `rate` per second on a kept HTTP/2 connection.
pub fn requests(shared: Arc<Shared>, t: Target, class: &'static str, rate: f64, mut rng: Rng) {
    let tls = t.tls.then(|| shared.tls_h2.clone());
    let mut conn: Option<H2Conn> = None;
    paced(&shared, period(rate), &mut rng, |rng| {
        let key = (t.service, class);
        let start = Instant::now();
        if conn.as_ref().is_none_or(|c| c.going) {
            match open(&t, tls.as_ref()) {
                Ok(c) => conn = Some(c),
                Err(f) => {
                    shared.fail(key, start, 0, f.cause, false);
                    return;
                }
            }
        }
        let c = conn.as_mut().expect("just opened");
        let n = 1 + rng.range(0, 4) as usize;
        let mut streams: Vec<(u32, InFlight)> = (0..n)
            .map(|_| {
                let upload = rng.range(0, 3) == 0;
                let body: Vec<u8> = if upload {
                    let len = rng.range(1, MAX_UPLOAD) as usize;
                    let fill = rng.next_u64() as u8;
                    (0..len)
                        .map(|i| (i as u8).wrapping_mul(13) ^ fill)
                        .collect()
                } else {
                    Vec::new()
                };
                let id = c.next_id;
                c.next_id += 2;
                let f = InFlight {
                    method: if upload { "POST" } else { "GET" },
                    path: if upload { "/upload" } else { "/h2" },
                    body,
                    sent: 0,
                    window: c.initial,
                    status: 0,
                    got: Vec::new(),
                    done: false,
                    reset: None,
                };
                (id, f)
            })
            .collect();
        let port = c.port;
        match batch(c, &mut streams) {
            Ok(()) => {
                for (_, s) in &streams {
                    match check(&t, s) {
                        Ok(()) => shared.ok(key),
                        Err(why) => shared.fail(key, start, port, why, false),
                    }
                }
            }
            Err(f) => {
                conn = None;
                // Streams the server finished before the failure count.
                for (_, s) in &streams {
                    match s.done.then(|| check(&t, s)) {
                        Some(Ok(())) => shared.ok(key),
                        Some(Err(why)) => shared.fail(key, start, port, why, false),
                        None => shared.fail(key, start, port, f.cause.clone(), false),
                    }
                }
            }
        }
    });
}

/// What a finished stream must be.
fn check(t: &Target, s: &InFlight) -> Result<(), String> {
    if let Some(code) = s.reset {
        return Err(format!("stream reset ({code})"));
    }
    if s.status != 200 {
        return Err(format!("status {}", s.status));
    }
    if !from_pool(&s.got, t.pool) || !body_matches(&s.got, s.method, s.path, &s.body) {
        return Err(format!(
            "wrong body: {:?}",
            String::from_utf8_lossy(&s.got[..s.got.len().min(80)])
        ));
    }
    Ok(())
}

/// Opens a connection and exchanges the prefaces.
fn open(t: &Target, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<H2Conn, Fail> {
    let s = connect(t.addr)?;
    let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut io: Box<dyn Io> = match tls {
        None => Box::new(s),
        Some(cfg) => {
            let t = tls_stream(s, cfg)?;
            if t.conn.alpn_protocol() != Some(b"h2") {
                return Err(Fail::new("ALPN did not choose h2"));
            }
            Box::new(t)
        }
    };
    let mut hello = PREFACE.to_vec();
    frame::write_settings(&mut hello, &[(0x2, 0), (0x4, WINDOW - 1)]);
    frame::write_window_update(&mut hello, StreamId::CONNECTION, WINDOW - 65_535);
    io.write_all(&hello).map_err(|e| io_fail("preface", &e))?;
    Ok(H2Conn {
        io,
        port,
        next_id: 1,
        send_window: 65_535,
        initial: 65_535,
        dec: Decoder::new(hpack::DEFAULT_TABLE_SIZE),
        going: false,
    })
}

/// Sends the batch's streams and reads until each has ended.
fn batch(c: &mut H2Conn, streams: &mut [(u32, InFlight)]) -> Result<(), Fail> {
    let start = Instant::now();
    let mut out = Vec::new();
    for (id, s) in streams.iter() {
        let length = s.body.len().to_string();
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", s.method.as_bytes()),
            (b":scheme", b"https"),
            (b":path", s.path.as_bytes()),
            (b":authority", b"lb.cns.test"),
            (b"user-agent", b"loadtest-chaos-h2"),
        ];
        if !s.body.is_empty() {
            fields.push((b"content-length", length.as_bytes()));
        }
        let mut block = Vec::new();
        hpack::encode(&mut block, fields);
        let fl = flags::END_HEADERS
            | if s.body.is_empty() {
                flags::END_STREAM
            } else {
                0
            };
        frame::write_header(&mut out, block.len(), Kind::Headers, fl, StreamId::new(*id));
        out.extend_from_slice(&block);
    }
    c.io.write_all(&out).map_err(|e| io_fail("request", &e))?;
    let by_id: HashMap<u32, usize> = streams
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    loop {
        send_bodies(c, streams)?;
        if streams.iter().all(|(_, s)| s.done) {
            // A body the server answered before it was all sent (a 503):
            // the rest is not coming, as the stream's reset says.
            let mut out = Vec::new();
            let code = moirai::proto::h2::ErrorCode::Cancel;
            for (id, _) in streams.iter().filter(|(_, s)| s.sent < s.body.len()) {
                frame::write_rst_stream(&mut out, StreamId::new(*id), code);
            }
            if !out.is_empty() {
                c.io.write_all(&out).map_err(|e| io_fail("reset", &e))?;
            }
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(Fail::new("past the deadline"));
        }
        let (h, payload) = read_frame(&mut *c.io)?;
        let at = by_id.get(&h.stream.get()).copied();
        match h.kind {
            Kind::Settings if !h.has(flags::ACK) => {
                for (id, v) in frame::settings_params(&payload) {
                    if id == 0x4 {
                        let delta = i64::from(v) - c.initial;
                        c.initial = i64::from(v);
                        for (_, s) in streams.iter_mut() {
                            s.window += delta;
                        }
                    }
                }
                let mut ack = Vec::new();
                frame::write_settings_ack(&mut ack);
                c.io.write_all(&ack)
                    .map_err(|e| io_fail("settings ack", &e))?;
            }
            Kind::Ping if !h.has(flags::ACK) && payload.len() == 8 => {
                let mut pong = Vec::new();
                let mut p = [0; 8];
                p.copy_from_slice(&payload);
                frame::write_ping(&mut pong, true, p);
                c.io.write_all(&pong).map_err(|e| io_fail("ping ack", &e))?;
            }
            Kind::WindowUpdate if payload.len() == 4 => {
                let inc = i64::from(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff,
                );
                match at {
                    _ if h.stream.is_connection() => c.send_window += inc,
                    Some(i) => streams[i].1.window += inc,
                    None => {}
                }
            }
            Kind::GoAway => {
                c.going = true;
                let last = payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                if streams.iter().any(|(id, s)| !s.done && *id > last) {
                    return Err(Fail::new("GOAWAY before the stream"));
                }
            }
            Kind::Headers | Kind::Continuation => {
                let Some(i) = at else { continue };
                let mut block = payload.clone();
                let mut end = h.has(flags::END_HEADERS);
                let end_stream = h.has(flags::END_STREAM);
                if h.kind == Kind::Headers {
                    block = strip_headers(&h, &payload)?;
                }
                while !end {
                    let (h2, more) = read_frame(&mut *c.io)?;
                    end = h2.has(flags::END_HEADERS);
                    block.extend_from_slice(&more);
                }
                let limits = ListLimits {
                    max_list_size: 1 << 20,
                    max_fields: 1000,
                };
                let decoded = c
                    .dec
                    .decode(&block, limits)
                    .map_err(|e| Fail::new(format!("hpack: {e:?}")))?;
                let s = &mut streams[i].1;
                for f in decoded.fields.iter() {
                    if f.name == b":status" {
                        s.status = std::str::from_utf8(f.value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    }
                }
                s.done |= end_stream;
            }
            Kind::Data => {
                if let Some(i) = at {
                    let s = &mut streams[i].1;
                    s.got.extend_from_slice(&strip_padding(&h, &payload)?);
                    s.done |= h.has(flags::END_STREAM);
                }
            }
            Kind::RstStream => {
                if let Some(i) = at {
                    let s = &mut streams[i].1;
                    s.reset = payload
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    // NO_ERROR after a complete response is not a failure.
                    if s.reset == Some(0) && s.status != 0 {
                        s.reset = None;
                    }
                    s.done = true;
                }
            }
            _ => {}
        }
    }
}

/// Sends what the windows allow of every stream's body, all of it: the
/// caller then blocks reading, and a server waiting for the rest of a
/// body has nothing to say.
fn send_bodies(c: &mut H2Conn, streams: &mut [(u32, InFlight)]) -> Result<(), Fail> {
    let mut out = Vec::new();
    for (id, s) in streams.iter_mut() {
        while !s.done && s.sent < s.body.len() {
            let left = s.body.len() - s.sent;
            let n = (left as i64)
                .min(s.window)
                .min(c.send_window)
                .clamp(0, 16_384) as usize;
            if n == 0 {
                break;
            }
            frame::write_data_header(&mut out, StreamId::new(*id), n, n == left);
            out.extend_from_slice(&s.body[s.sent..s.sent + n]);
            s.sent += n;
            s.window -= n as i64;
            c.send_window -= n as i64;
        }
    }
    if !out.is_empty() {
        c.io.write_all(&out)
            .map_err(|e| io_fail("request body", &e))?;
    }
    Ok(())
}

fn read_frame(io: &mut dyn Io) -> Result<(Header, Vec<u8>), Fail> {
    let mut head = [0; HEADER_LEN];
    io.read_exact(&mut head)
        .map_err(|e| io_fail("response", &e))?;
    let h = Header::parse(&head).ok_or_else(|| Fail::new("bad frame header"))?;
    let mut payload = vec![0; h.length as usize];
    io.read_exact(&mut payload)
        .map_err(|e| io_fail("response", &e))?;
    Ok((h, payload))
}

/// A HEADERS payload without its padding and priority.
fn strip_headers(h: &Header, p: &[u8]) -> Result<Vec<u8>, Fail> {
    let mut p = strip_padding(h, p)?;
    if h.has(flags::PRIORITY) {
        p = p
            .get(5..)
            .ok_or_else(|| Fail::new("short HEADERS"))?
            .to_vec();
    }
    Ok(p)
}

fn strip_padding(h: &Header, p: &[u8]) -> Result<Vec<u8>, Fail> {
    if !h.has(flags::PADDED) {
        return Ok(p.to_vec());
    }
    let pad = *p.first().ok_or_else(|| Fail::new("short frame"))? as usize;
    p.get(1..p.len().saturating_sub(pad))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Fail::new("bad padding"))
}
