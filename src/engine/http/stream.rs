//! An HTTP/2 stream as a leg's [`Front`]: the request is the stream's own
//! bytes (the codec's HTTP/1.1 translation, framed by us), and the
//! response goes out as frames through the connection's codec. The leg's
//! steps, exchange, backend connection and buffer are the same as for an
//! HTTP/1 request; only this side differs.
//!
//! The response head the exchange assembled (the backend's lines less the
//! dropped ones, plus ours) is split into its lines and translated by
//! [`crate::proto::h2::to_h2`], so the client gets exactly the fields the
//! HTTP/1 path would have sent, in HTTP/2's form. The body reaches here
//! de-chunked ([`Exchange::for_http2_stream`]) and goes out as DATA
//! within the flow-control windows; a closed window is a blocked write.
//! The session ends the stream with [`StreamFront::end`] once the leg
//! finished.
//!
//! [`Exchange::for_http2_stream`]: crate::proto::http1::exchange::Exchange::for_http2_stream

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Instant;

use super::front::Front;
use super::write::Outgoing;
use crate::engine::buffer::Buffer;
use crate::engine::conn::{Io, Transport};
use crate::engine::step::{CloseReason, Ctx};
use crate::proto::h2::{to_h2, Connection, StreamId};
use crate::proto::http1::body::{self, Body, RelayError};
use crate::proto::http1::{head_slices, MAX_SLICES};

/// Why a response cannot go to an HTTP/2 client: the leg answers 502
/// (before a status) or resets the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// HTTP/2 cannot carry it ([`to_h2::Refused`]).
    Translate(to_h2::Refused),
    /// The codec refused the stream (reset, or the connection ended).
    Stream,
}

/// One stream of an HTTP/2 connection, as the front of its leg.
#[derive(Debug)]
pub struct StreamFront<'a> {
    /// The connection's codec: where frames are queued.
    pub codec: &'a mut Connection,
    /// The stream.
    pub stream: StreamId,
    /// The request as the backend gets it: the translated head, then the
    /// body with our framing.
    pub request: &'a mut Option<Buffer>,
    /// The client ended the stream (END_STREAM, or trailers).
    pub ended: bool,
    /// The client's address, for logs.
    pub peer: SocketAddr,
    /// Why the last head could not be sent, if it could not.
    pub refused: Option<Refused>,
    /// Response bytes sent through it (the head as HTTP/1 counts it, then
    /// DATA), for the stream's access line.
    pub sent: u64,
    /// The connection's scratch space for heads, kept between responses.
    pub scratch: &'a mut HeadScratch,
}

/// Room a response head is assembled and encoded in, kept by the
/// connection so that a response allocates nothing for its head.
#[derive(Debug, Default)]
pub struct HeadScratch {
    text: Vec<u8>,
    block: Vec<u8>,
}

impl HeadScratch {
    /// Heap bytes it holds.
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.block.capacity()
    }

    /// Its two vectors (the head's text, its encoded block).
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.text, self.block)
    }

    /// One made of these vectors.
    pub fn from_parts(text: Vec<u8>, block: Vec<u8>) -> HeadScratch {
        HeadScratch { text, block }
    }
}

#[cfg(test)]
impl HeadScratch {
    /// One that holds `n` bytes of room in each vector.
    pub fn with_room(n: usize) -> HeadScratch {
        HeadScratch {
            text: Vec::with_capacity(n),
            block: Vec::with_capacity(n),
        }
    }

    /// Whether it holds no memory.
    pub fn is_empty(&self) -> bool {
        self.text.capacity() == 0 && self.block.capacity() == 0
    }
}

impl StreamFront<'_> {
    /// Sends the response head `head` as a HEADERS block (a 1xx as an
    /// interim one); its body bytes go after it through
    /// [`StreamFront::data`].
    fn headers(&mut self, head: &Outgoing<'_>) -> Result<(), Refused> {
        let HeadScratch { text, block } = &mut *self.scratch;
        text.clear();
        text.reserve(head.head_len());
        let mut skip = 0;
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = head_slices(head.src, head.drop, head.injects, skip, &mut slices);
            if n == 0 {
                break;
            }
            for s in &slices[..n] {
                text.extend_from_slice(s);
                skip += s.len();
            }
        }
        to_h2::encode_head(text, block).map_err(Refused::Translate)?;
        self.codec
            .send_block(self.stream, block, false)
            .map_err(|_| Refused::Stream)
    }

    /// Sends what the windows allow of `bytes` as DATA; how much went.
    fn data(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.codec
            .send_data(self.stream, bytes, false)
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    /// Ends the stream: an empty DATA frame with END_STREAM, once the
    /// response is complete.
    pub fn end(&mut self) -> bool {
        self.codec.send_data(self.stream, &[], true).is_ok()
    }
}

impl<S: Transport> Front<S> for StreamFront<'_> {
    fn request(&mut self) -> &mut Option<Buffer> {
        self.request
    }

    /// The connection reads for all its streams.
    fn pull(&mut self, _ctx: &mut Ctx<'_, S>) -> Result<bool, CloseReason> {
        Ok(false)
    }

    fn input_ended(&self) -> bool {
        self.ended
    }

    /// An HTTP/2 connection outlives its responses; its session ends it.
    fn closing(&self) -> bool {
        false
    }

    fn send_head(&mut self, head: &Outgoing<'_>, sent: usize, _last: bool, _now: Instant) -> Io {
        let head_len = head.head_len();
        if sent < head_len {
            if let Err(r) = self.headers(head) {
                self.refused = Some(r);
                return Io::Failed;
            }
        }
        let from = sent.saturating_sub(head_len).min(head.body.len());
        let body = &head.body[from..];
        let went = if body.is_empty() {
            0
        } else {
            match self.data(body) {
                Ok(n) => n,
                Err(_) => return Io::Failed,
            }
        };
        let moved = head_len.saturating_sub(sent) + went;
        self.sent += moved as u64;
        if moved == 0 && !body.is_empty() {
            Io::Blocked
        } else {
            Io::Moved(moved)
        }
    }

    fn send_body(
        &mut self,
        slot: &mut Option<Buffer>,
        body: &mut Body,
        _now: Instant,
    ) -> Result<bool, RelayError> {
        let input = slot.as_ref().map_or(&[][..], Buffer::pending);
        let r = body::relay(body, input, |slices| {
            // De-chunked: the slices are data only.
            let mut n = 0;
            for s in slices.iter().filter(|s| !s.is_empty()) {
                let k = self.data(s)?;
                n += k;
                if k < s.len() {
                    break;
                }
            }
            if n == 0 {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        })?;
        if let Some(b) = slot.as_mut() {
            b.consumed(r.consumed);
        }
        self.sent += r.written as u64;
        Ok(r.written > 0 || r.consumed > 0)
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::script::Script;
    use crate::proto::h2::frame::{flags, Header, Kind};
    use crate::proto::h2::hpack::{Decoder, ListLimits};
    use crate::proto::h2::testkit::{get, sid, Client};
    use crate::proto::http1::body::Framing;

    /// A client with stream 1 open (a GET that ended its side).
    fn open() -> Client {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.take_frames();
        c
    }

    fn front<'a>(
        c: &'a mut Client,
        request: &'a mut Option<Buffer>,
        scratch: &'a mut HeadScratch,
    ) -> StreamFront<'a> {
        StreamFront {
            scratch,
            codec: &mut c.conn,
            stream: sid(1),
            request,
            ended: true,
            peer: "192.0.2.9:40000".parse().unwrap(),
            refused: None,
            sent: 0,
        }
    }

    /// A head as the exchange hands it over: the backend's bytes up to
    /// the final CRLF, lines dropped, lines added.
    fn head<'a>(
        text: &'a str,
        drop: &'a [std::ops::Range<usize>],
        add: &'a [&'a [u8]],
    ) -> Outgoing<'a> {
        let end = text.find("\r\n\r\n").unwrap() + 2;
        Outgoing {
            src: &text.as_bytes()[..end],
            drop,
            injects: add,
            body: &text.as_bytes()[end + 2..],
        }
    }

    /// The fields of a HEADERS frame.
    fn fields(payload: &[u8]) -> Vec<(String, String)> {
        let limits = ListLimits {
            max_list_size: 1 << 20,
            max_fields: 200,
        };
        Decoder::new(4096)
            .decode(payload, limits)
            .unwrap()
            .fields
            .to_vec()
            .into_iter()
            .map(|f| {
                (
                    String::from_utf8(f.name).unwrap(),
                    String::from_utf8(f.value).unwrap(),
                )
            })
            .collect()
    }

    fn kinds(frames: &[(Header, Vec<u8>)]) -> Vec<(Kind, bool)> {
        frames
            .iter()
            .map(|(h, _)| (h.kind, h.flags & flags::END_STREAM != 0))
            .collect()
    }

    #[test]
    fn a_response_goes_out_as_headers_then_data_then_the_end() {
        let mut c = open();
        let mut req = None;
        let text =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-Old: 1\r\n\r\nhi";
        let old = text.find("X-Old").unwrap()..text.find("\r\n\r\n").unwrap() + 2;
        let added: [&[u8]; 1] = [b"Set-Cookie: a=b\r\n"];
        let out = head(text, std::slice::from_ref(&old), &added);
        let mut scratch = HeadScratch::default();
        let mut f = front(&mut c, &mut req, &mut scratch);
        let io = Front::<Script>::send_head(&mut f, &out, 0, false, Instant::now());
        assert_eq!(io, Io::Moved(out.head_len() + 2));
        assert!(f.end());
        let frames = c.take_frames();
        assert_eq!(
            kinds(&frames),
            [
                (Kind::Headers, false),
                (Kind::Data, false),
                (Kind::Data, true)
            ]
        );
        assert_eq!(
            fields(&frames[0].1),
            [
                (":status".into(), "200".into()),
                ("content-length".into(), "2".into()),
                ("set-cookie".into(), "a=b".into()),
            ],
            "hop-by-hop and dropped lines gone, ours added"
        );
        assert_eq!(frames[1].1, b"hi");
    }

    #[test]
    fn a_closed_window_blocks_the_body_not_the_head() {
        let mut c = open();
        // The client opens no window for stream 1's data... by shrinking
        // its initial window to nothing.
        c.send(&crate::proto::h2::testkit::settings(&[(0x4, 0)]))
            .unwrap();
        c.take_frames();
        let mut req = None;
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let out = head(text, &[], &[]);
        let mut scratch = HeadScratch::default();
        let mut f = front(&mut c, &mut req, &mut scratch);
        let io = Front::<Script>::send_head(&mut f, &out, 0, false, Instant::now());
        assert_eq!(io, Io::Moved(out.head_len()), "the head, no body");
        let io = Front::<Script>::send_head(&mut f, &out, out.head_len(), false, Instant::now());
        assert_eq!(io, Io::Blocked);
        // The body waits as well, with its bytes in hand.
        let mut pool = crate::engine::buffer::BufferPool::new(1);
        let mut slot = Some(pool.take());
        slot.as_mut().unwrap().spare()[..2].copy_from_slice(b"hi");
        slot.as_mut().unwrap().filled(2);
        let mut body = Body::new(Framing::Length(2));
        let moved =
            Front::<Script>::send_body(&mut f, &mut slot, &mut body, Instant::now()).unwrap();
        assert!(!moved, "a closed window takes nothing");
        assert_eq!(slot.as_ref().unwrap().pending(), b"hi", "nothing consumed");
        assert!(!body.is_done());
        assert_eq!(
            kinds(&c.take_frames()),
            [(Kind::Headers, false)],
            "the head went, no DATA"
        );
    }

    #[test]
    fn a_chunked_body_reaches_the_client_as_data_only() {
        let mut c = open();
        let mut req = None;
        let mut scratch = HeadScratch::default();
        let mut f = front(&mut c, &mut req, &mut scratch);
        let mut pool = crate::engine::buffer::BufferPool::new(1);
        let mut slot = Some(pool.take());
        let wire = b"2\r\nhi\r\n3\r\nyou\r\n0\r\n\r\n";
        slot.as_mut().unwrap().spare()[..wire.len()].copy_from_slice(wire);
        slot.as_mut().unwrap().filled(wire.len());
        let mut body = Body::new(Framing::Chunked).dechunked();
        assert!(Front::<Script>::send_body(&mut f, &mut slot, &mut body, Instant::now()).unwrap());
        assert!(body.is_done());
        let frames = c.take_frames();
        let data: Vec<u8> = frames.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(data, b"hiyou");
    }

    #[test]
    fn a_switch_cannot_go_to_an_http2_client() {
        let mut c = open();
        let mut req = None;
        let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let out = head(text, &[], &[]);
        let mut scratch = HeadScratch::default();
        let mut f = front(&mut c, &mut req, &mut scratch);
        let io = Front::<Script>::send_head(&mut f, &out, 0, false, Instant::now());
        assert_eq!(io, Io::Failed);
        assert_eq!(
            f.refused,
            Some(Refused::Translate(to_h2::Refused::SwitchingProtocols))
        );
        assert!(c.take_frames().is_empty(), "nothing sent");
    }
}
