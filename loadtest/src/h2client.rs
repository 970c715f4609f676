//! The smallest HTTP/2 client that is still a correct one, for the
//! scenarios where each connection carries one request (`h2-handshake`,
//! and `loadtest idle --h2`): the preface, our SETTINGS and one `GET /`
//! on stream 1 in one write; then the server's frames are read until
//! stream 1 ends, its SETTINGS and PINGs acknowledged on the way. The
//! frames are parsed and the response head decoded with moirai's own
//! codec (`moirai::proto::h2`), which h2load's runs check independently.
//! Multiplexed load (`h2`, `h2-100`) is h2load's (`h2load.rs`).

use std::sync::OnceLock;

use moirai::proto::h2::frame::{self, Frame, Header, HEADER_LEN};
use moirai::proto::h2::hpack::{self, Decoder, ListLimits};
use moirai::proto::h2::{settings, ErrorCode, StreamId, PREFACE};

/// The one request's stream.
const STREAM: u32 = 1;

fn stream_one() -> StreamId {
    StreamId::new(STREAM)
}

/// The bytes a one-request connection opens with: the preface, SETTINGS
/// (no push, as browsers send), and HEADERS for `GET /` with END_STREAM.
pub fn request() -> &'static [u8] {
    static REQUEST: OnceLock<Vec<u8>> = OnceLock::new();
    REQUEST.get_or_init(|| {
        let mut out = PREFACE.to_vec();
        frame::write_settings(&mut out, &[(settings::ENABLE_PUSH, 0)]);
        let mut block = Vec::new();
        hpack::encode(
            &mut block,
            [
                (&b":method"[..], &b"GET"[..]),
                (b":scheme", b"https"),
                (b":path", b"/"),
                (b":authority", b"loadtest"),
            ],
        );
        frame::write_header(
            &mut out,
            block.len(),
            frame::Kind::Headers,
            frame::flags::END_HEADERS | frame::flags::END_STREAM,
            stream_one(),
        );
        out.extend_from_slice(&block);
        out
    })
}

/// What closes a one-request connection politely: GOAWAY (NO_ERROR,
/// no stream of the server's processed), as h2load ends its connections.
pub fn goodbye() -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_goaway(&mut out, StreamId::CONNECTION, ErrorCode::NoError, b"");
    out
}

/// Why a response was not a good one; the names are the error kinds the
/// reports count.
pub type Failure = &'static str;

/// The server's side of a one-request connection, as its bytes arrive.
#[derive(Debug, Default)]
pub struct Response {
    decoder: Decoder,
    /// A header block waiting for its CONTINUATION frames.
    block: Vec<u8>,
    /// While `block` is being continued: whether its HEADERS frame ended
    /// the stream (the response ends with the block's last frame).
    continuing: Option<bool>,
    /// The response's status, once its head is decoded.
    pub status: Option<u16>,
    /// Body bytes of stream 1.
    pub body: usize,
}

impl Response {
    /// A fresh connection's.
    pub fn new() -> Response {
        Response::default()
    }

    /// Takes every complete frame from the front of `buf` (the bytes
    /// read so far; what is left is an incomplete frame), appends what
    /// must be answered to `out` (SETTINGS and PING acknowledgements),
    /// and says whether stream 1 has ended with a 2xx response. An
    /// error, a non-2xx status, a reset stream or a GOAWAY before the end
    /// is a [`Failure`].
    pub fn feed(&mut self, buf: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<bool, Failure> {
        let mut at = 0;
        let mut done = false;
        while !done {
            let Some(h) = Header::parse(&buf[at..]) else {
                break;
            };
            let end = at + HEADER_LEN + h.length as usize;
            if buf.len() < end {
                break;
            }
            let f = frame::parse(&h, &buf[at + HEADER_LEN..end]).map_err(|_| "bad_response")?;
            done = self.frame(f, out)?;
            at = end;
        }
        buf.drain(..at);
        Ok(done)
    }

    fn frame(&mut self, f: Frame<'_>, out: &mut Vec<u8>) -> Result<bool, Failure> {
        if self.continuing.is_some() && !matches!(f, Frame::Continuation { .. }) {
            // §6.10: nothing may come between a block's frames.
            return Err("bad_response");
        }
        match f {
            Frame::Settings { ack: false, .. } => frame::write_settings_ack(out),
            Frame::Ping {
                ack: false,
                payload,
            } => frame::write_ping(out, true, payload),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
                ..
            } if stream.get() == STREAM => {
                if self.status.is_some() && !end_stream {
                    // Trailers end the stream; a second head does not.
                    return Err("bad_response");
                }
                self.block.clear();
                self.block.extend_from_slice(fragment);
                self.continuing = (!end_headers).then_some(end_stream);
                if end_headers {
                    self.head()?;
                }
                return self.ended(end_stream && end_headers);
            }
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => {
                let Some(end_stream) = self.continuing.filter(|_| stream.get() == STREAM) else {
                    return Err("bad_response");
                };
                self.block.extend_from_slice(fragment);
                if !end_headers {
                    return Ok(false);
                }
                self.continuing = None;
                self.head()?;
                return self.ended(end_stream);
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            } if stream.get() == STREAM => {
                if self.status.is_none() {
                    return Err("bad_response");
                }
                self.body += data.len();
                return self.ended(end_stream);
            }
            Frame::RstStream { stream, .. } if stream.get() == STREAM => return Err("reset"),
            Frame::GoAway { .. } => return Err("goaway"),
            _ => {}
        }
        Ok(false)
    }

    /// Decodes the block in hand: the first head sets the status.
    fn head(&mut self) -> Result<(), Failure> {
        let limits = ListLimits {
            max_list_size: 64 * 1024,
            max_fields: 200,
        };
        let d = self
            .decoder
            .decode(&self.block, limits)
            .map_err(|_| "bad_response")?;
        if self.status.is_some() {
            // Trailers.
            return Ok(());
        }
        let status = d
            .fields
            .iter()
            .find(|f| f.name == b":status")
            .and_then(|f| std::str::from_utf8(f.value).ok()?.parse::<u16>().ok())
            .ok_or("bad_response")?;
        self.status = Some(status);
        match status {
            200..=299 => Ok(()),
            // An interim response (100 Continue, 103): the real one follows.
            100..=199 => {
                self.status = None;
                Ok(())
            }
            300..=399 => Err("status_3xx"),
            400..=499 => Err("status_4xx"),
            _ => Err("status_5xx"),
        }
    }

    fn ended(&self, end_stream: bool) -> Result<bool, Failure> {
        if end_stream && self.status.is_none() {
            return Err("bad_response");
        }
        Ok(end_stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's frames: SETTINGS, then a response head and a body.
    fn server(status: &[u8], body: &[u8], split_head: bool) -> Vec<u8> {
        let mut out = Vec::new();
        frame::write_settings(&mut out, &[(settings::MAX_CONCURRENT_STREAMS, 100)]);
        frame::write_window_update(&mut out, StreamId::CONNECTION, 1 << 20);
        let mut block = Vec::new();
        hpack::encode(
            &mut block,
            [
                (&b":status"[..], status),
                (b"content-type", b"text/plain"),
                (
                    b"x-some-long-header-name",
                    b"and a value long enough to split",
                ),
            ],
        );
        if split_head {
            let (a, b) = block.split_at(block.len() / 2);
            frame::write_header(&mut out, a.len(), frame::Kind::Headers, 0, stream_one());
            out.extend_from_slice(a);
            frame::write_header(
                &mut out,
                b.len(),
                frame::Kind::Continuation,
                frame::flags::END_HEADERS,
                stream_one(),
            );
            out.extend_from_slice(b);
        } else {
            frame::write_header(
                &mut out,
                block.len(),
                frame::Kind::Headers,
                frame::flags::END_HEADERS,
                stream_one(),
            );
            out.extend_from_slice(&block);
        }
        frame::write_data_header(&mut out, stream_one(), body.len(), true);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn the_request_is_a_preface_settings_and_one_get() {
        let r = request();
        assert!(r.starts_with(PREFACE));
        let mut at = PREFACE.len();
        let mut kinds = Vec::new();
        while at < r.len() {
            let h = Header::parse(&r[at..]).unwrap();
            let payload = &r[at + HEADER_LEN..at + HEADER_LEN + h.length as usize];
            match frame::parse(&h, payload).unwrap() {
                Frame::Settings { ack, params } => {
                    assert!(!ack);
                    let p: Vec<_> = frame::settings_params(params).collect();
                    assert_eq!(p, [(settings::ENABLE_PUSH, 0)]);
                }
                Frame::Headers {
                    stream,
                    end_stream,
                    end_headers,
                    fragment,
                    ..
                } => {
                    assert_eq!(stream.get(), 1);
                    assert!(end_stream && end_headers);
                    let d = Decoder::default()
                        .decode(
                            fragment,
                            ListLimits {
                                max_list_size: 4096,
                                max_fields: 10,
                            },
                        )
                        .unwrap();
                    let fields: Vec<(&[u8], &[u8])> =
                        d.fields.iter().map(|f| (f.name, f.value)).collect();
                    assert_eq!(
                        fields,
                        [
                            (&b":method"[..], &b"GET"[..]),
                            (b":scheme", b"https"),
                            (b":path", b"/"),
                            (b":authority", b"loadtest"),
                        ]
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
            kinds.push(h.kind);
            at += HEADER_LEN + h.length as usize;
        }
        assert_eq!(kinds, [frame::Kind::Settings, frame::Kind::Headers]);
    }

    #[test]
    fn a_response_ends_with_its_data_and_settings_are_acknowledged() {
        let bytes = server(b"200", &[b'x'; 64], false);
        let mut r = Response::new();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // Byte by byte: nothing is taken before a frame is whole.
        for (i, b) in bytes.iter().enumerate() {
            buf.push(*b);
            let done = r.feed(&mut buf, &mut out).unwrap();
            assert_eq!(done, i == bytes.len() - 1, "at byte {i}");
        }
        assert!(buf.is_empty());
        assert_eq!(r.status, Some(200));
        assert_eq!(r.body, 64);
        let mut ack = Vec::new();
        frame::write_settings_ack(&mut ack);
        assert_eq!(out, ack);
    }

    #[test]
    fn a_head_split_over_continuation_is_decoded() {
        let mut buf = server(b"204", b"", true);
        let mut r = Response::new();
        assert_eq!(r.feed(&mut buf, &mut Vec::new()), Ok(true));
        assert_eq!(r.status, Some(204));
    }

    /// A response without a body whose head is split: END_STREAM is on
    /// the HEADERS frame, and the response ends with the CONTINUATION.
    #[test]
    fn a_split_head_that_ends_the_stream_ends_the_response() {
        let mut block = Vec::new();
        hpack::encode(&mut block, [(&b":status"[..], &b"204"[..]), (b"x-a", b"1")]);
        let (a, b) = block.split_at(block.len() / 2);
        let mut buf = Vec::new();
        let end_stream = frame::flags::END_STREAM;
        frame::write_header(
            &mut buf,
            a.len(),
            frame::Kind::Headers,
            end_stream,
            stream_one(),
        );
        buf.extend_from_slice(a);
        let mut r = Response::new();
        assert_eq!(r.feed(&mut buf.clone(), &mut Vec::new()), Ok(false));
        let end_headers = frame::flags::END_HEADERS;
        frame::write_header(
            &mut buf,
            b.len(),
            frame::Kind::Continuation,
            end_headers,
            stream_one(),
        );
        buf.extend_from_slice(b);
        let mut r = Response::new();
        assert_eq!(r.feed(&mut buf, &mut Vec::new()), Ok(true));
        assert_eq!(r.status, Some(204));
    }

    #[test]
    fn a_head_with_end_stream_ends_the_response() {
        let mut buf = Vec::new();
        let mut block = Vec::new();
        hpack::encode(&mut block, [(&b":status"[..], &b"200"[..])]);
        frame::write_header(
            &mut buf,
            block.len(),
            frame::Kind::Headers,
            frame::flags::END_HEADERS | frame::flags::END_STREAM,
            stream_one(),
        );
        buf.extend_from_slice(&block);
        assert_eq!(Response::new().feed(&mut buf, &mut Vec::new()), Ok(true));
    }

    #[test]
    fn pings_are_answered() {
        let mut buf = Vec::new();
        frame::write_ping(&mut buf, false, *b"12345678");
        let mut out = Vec::new();
        assert_eq!(Response::new().feed(&mut buf, &mut out), Ok(false));
        let mut pong = Vec::new();
        frame::write_ping(&mut pong, true, *b"12345678");
        assert_eq!(out, pong);
    }

    #[test]
    fn failures_have_their_kind() {
        for (status, kind) in [
            (&b"503"[..], "status_5xx"),
            (b"404", "status_4xx"),
            (b"301", "status_3xx"),
        ] {
            let mut buf = server(status, b"", false);
            assert_eq!(
                Response::new().feed(&mut buf, &mut Vec::new()),
                Err(kind),
                "{status:?}"
            );
        }
        let mut buf = Vec::new();
        frame::write_rst_stream(&mut buf, stream_one(), ErrorCode::RefusedStream);
        assert_eq!(
            Response::new().feed(&mut buf, &mut Vec::new()),
            Err("reset")
        );
        let mut buf = Vec::new();
        frame::write_goaway(&mut buf, StreamId::CONNECTION, ErrorCode::Internal, b"");
        assert_eq!(
            Response::new().feed(&mut buf, &mut Vec::new()),
            Err("goaway")
        );
        // DATA before any head.
        let mut buf = Vec::new();
        frame::write_data_header(&mut buf, stream_one(), 1, true);
        buf.push(b'x');
        assert_eq!(
            Response::new().feed(&mut buf, &mut Vec::new()),
            Err("bad_response")
        );
        // A head with no :status.
        let mut buf = Vec::new();
        let mut block = Vec::new();
        hpack::encode(&mut block, [(&b"server"[..], &b"x"[..])]);
        frame::write_header(
            &mut buf,
            block.len(),
            frame::Kind::Headers,
            frame::flags::END_HEADERS | frame::flags::END_STREAM,
            stream_one(),
        );
        buf.extend_from_slice(&block);
        assert_eq!(
            Response::new().feed(&mut buf, &mut Vec::new()),
            Err("bad_response")
        );
    }

    #[test]
    fn an_interim_head_waits_for_the_real_one() {
        let mut buf = Vec::new();
        let mut block = Vec::new();
        hpack::encode(&mut block, [(&b":status"[..], &b"103"[..])]);
        frame::write_header(
            &mut buf,
            block.len(),
            frame::Kind::Headers,
            frame::flags::END_HEADERS,
            stream_one(),
        );
        buf.extend_from_slice(&block);
        buf.extend_from_slice(&server(b"200", b"ok", false));
        let mut r = Response::new();
        assert_eq!(r.feed(&mut buf, &mut Vec::new()), Ok(true));
        assert_eq!((r.status, r.body), (Some(200), 2));
    }

    #[test]
    fn goodbye_is_a_goaway_with_no_error() {
        let g = goodbye();
        let h = Header::parse(&g).unwrap();
        match frame::parse(&h, &g[HEADER_LEN..]).unwrap() {
            Frame::GoAway { code, .. } => assert_eq!(code, ErrorCode::NoError),
            other => panic!("{other:?}"),
        }
    }
}
