#!/usr/bin/python3
"""HTTP/2 server conformance suite (h2spec-style case list, own implementation).

Usage:
    /usr/bin/python3 tests/h2/conformance.py HOST PORT [--tls] [--json OUT]
                                                     [--only PATTERN] [--timeout S]

Each case opens a fresh connection (prior-knowledge h2c, or TLS with ALPN h2
and no certificate verification), sends crafted frames and classifies the
server's reaction. Case ids follow h2spec's numbering (``http2/5.1/1``,
``generic/3.1/2``, ``hpack/6.1/1``); descriptions and expected outcomes follow
h2spec's published case list, tightened or relaxed to RFC 9113 / RFC 7541
where noted in the case's ``note``.

Results are data, not a verdict: the script exits 0 whenever it ran to the end
(1 on usage errors or an internal crash). Dependencies: stdlib plus Debian's
python3-h2 family (hyperframe for frame encoding/decoding, hpack for Huffman
tables).

Target requirements: the server must answer ``GET /`` (and ``POST /``) with a
response; flow-control cases need a response body of at least 4 bytes (else
they report ``skip``).
"""

import argparse
import fnmatch
import json
import socket
import ssl
import struct
import sys
import time

try:
    from hyperframe.frame import (
        Frame, DataFrame, HeadersFrame, PriorityFrame, RstStreamFrame,
        SettingsFrame, PingFrame, GoAwayFrame, WindowUpdateFrame,
        ContinuationFrame, ExtensionFrame, PushPromiseFrame)
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
except ImportError as e:  # pragma: no cover
    sys.stderr.write("conformance.py needs python3-hyperframe and python3-hpack "
                     "(run it with /usr/bin/python3): %s\n" % e)
    sys.exit(1)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM",
               4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY",
               8: "WINDOW_UPDATE", 9: "CONTINUATION"}
# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, \
    SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, \
    COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, \
    INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR",
               "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
               "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
               "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]

# Settings identifiers
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"


def err_name(code):
    if 0 <= code < len(ERROR_NAMES):
        return ERROR_NAMES[code]
    return "0x%x" % code


def codes_str(codes):
    return "/".join(err_name(c) for c in codes)


class Inconclusive(Exception):
    """The server's behaviour did not let the case tell pass from fail."""


# ---------------------------------------------------------------------------
# Frame and header-block construction
# ---------------------------------------------------------------------------

def raw_frame(ftype, flags, stream_id, payload=b"", length=None):
    """A frame built byte by byte (for frames hyperframe would refuse)."""
    if length is None:
        length = len(payload)
    return struct.pack(">I", length)[1:] + struct.pack(
        ">BBI", ftype, flags, stream_id) + payload


def hf(frame_cls, stream_id, flags=(), **attrs):
    f = frame_cls(stream_id)
    for k, v in attrs.items():
        setattr(f, k, v)
    for fl in flags:
        f.flags.add(fl)
    return f.serialize()


def f_headers(sid, block, end_stream=True, end_headers=True, **prio):
    flags = []
    if end_stream:
        flags.append("END_STREAM")
    if end_headers:
        flags.append("END_HEADERS")
    if prio:
        flags.append("PRIORITY")
    return hf(HeadersFrame, sid, flags, data=block, **prio)


def f_cont(sid, block, end_headers=True):
    return hf(ContinuationFrame, sid, ["END_HEADERS"] if end_headers else [],
              data=block)


def f_data(sid, data, end_stream=True):
    return hf(DataFrame, sid, ["END_STREAM"] if end_stream else [], data=data)


def f_rst(sid, code):
    return hf(RstStreamFrame, sid, error_code=code)


def f_settings(settings=None, ack=False):
    return hf(SettingsFrame, 0, ["ACK"] if ack else [],
              settings=dict(settings or {}))


def f_ping(data, ack=False):
    return hf(PingFrame, 0, ["ACK"] if ack else [], opaque_data=data)


def f_wu(sid, inc):
    return hf(WindowUpdateFrame, sid, window_increment=inc)


def f_priority(sid, depends_on=0, weight=15, exclusive=False):
    # hyperframe's weight is the wire value (0..255, meaning weight+1).
    return hf(PriorityFrame, sid, depends_on=depends_on, stream_weight=weight,
              exclusive=exclusive)


def f_goaway(last_sid, code, sid=0):
    if sid == 0:
        return hf(GoAwayFrame, 0, last_stream_id=last_sid, error_code=code)
    return raw_frame(GOAWAY, 0, sid, struct.pack(">II", last_sid, code))


def enc_int(value, prefix_bits, first_byte=0):
    """RFC 7541 5.1 integer with an N-bit prefix, OR-ed into first_byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def enc_str(s, huffman=False):
    if isinstance(s, str):
        s = s.encode()
    if huffman:
        s = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(s)
        return enc_int(len(s), 7, 0x80) + s
    return enc_int(len(s), 7) + s


def lit(name, value):
    """Literal header field without indexing, new name, no Huffman.

    Stateless on purpose: no case depends on the peer's dynamic table."""
    return b"\x00" + enc_str(name) + enc_str(value)


def block(headers):
    return b"".join(lit(n, v) for n, v in headers)


def huffman_bits(s):
    """Huffman code of s as (int value, bit length), without padding."""
    val, nbits = 0, 0
    for b in s.encode():
        val = (val << REQUEST_CODES_LENGTH[b]) | REQUEST_CODES[b]
        nbits += REQUEST_CODES_LENGTH[b]
    return val, nbits


def bits_to_bytes(val, nbits, pad_bit=1):
    pad = (-nbits) % 8
    if pad_bit:
        val = (val << pad) | ((1 << pad) - 1)
    else:
        val <<= pad
    n = (nbits + pad) // 8
    return val.to_bytes(n, "big")


# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------

class Event(object):
    def __init__(self, kind, frame=None, ftype=None, flags=0, sid=0,
                 length=0, payload=b""):
        self.kind = kind            # "frame", "closed", "timeout"
        self.frame = frame
        self.type = ftype
        self.flags = flags
        self.sid = sid
        self.length = length
        self.payload = payload

    @property
    def code(self):
        return getattr(self.frame, "error_code", None)

    def is_(self, ftype, sid=None):
        return (self.kind == "frame" and self.type == ftype
                and (sid is None or self.sid == sid))

    def __str__(self):
        if self.kind != "frame":
            return self.kind
        name = FRAME_NAMES.get(self.type, "type0x%x" % self.type)
        parts = []
        if self.sid:
            parts.append("s%d" % self.sid)
        if self.type in (RST_STREAM, GOAWAY) and self.code is not None:
            parts.append(err_name(self.code))
        if self.type == GOAWAY and self.frame is not None:
            parts.append("last=%d" % self.frame.last_stream_id)
            dbg = bytes(self.frame.additional_data or b"")[:40]
            if dbg:
                parts.append("debug=%r" % dbg)
        if self.type == DATA:
            parts.append("len=%d" % self.length)
        if self.type == HEADERS and self.status:
            parts.append(":status=%s" % self.status)
        if self.type in (DATA, HEADERS) and self.flags & END_STREAM:
            parts.append("ES")
        if self.type in (SETTINGS, PING) and self.flags & ACK:
            parts.append("ACK")
        if self.type == WINDOW_UPDATE and self.frame is not None:
            parts.append("+%d" % self.frame.window_increment)
        return "%s(%s)" % (name, ",".join(parts))

    @property
    def status(self):
        # Best effort: our own tiny decoder is not worth it; look for the
        # common static-table encodings of :status.
        if self.type != HEADERS or self.frame is None:
            return None
        data = bytes(self.frame.data or b"")
        table = {0x88: "200", 0x89: "204", 0x8a: "206", 0x8b: "304",
                 0x8c: "400", 0x8d: "404", 0x8e: "500"}
        if data and data[0] in table:
            return table[data[0]]
        if len(data) >= 5 and data[0] in (0x08, 0x48, 0x18) and data[1] == 3:
            return data[2:5].decode("ascii", "replace")
        return None


class Conn(object):
    def __init__(self, opts):
        self.opts = opts
        self.buf = b""
        self.closed = False
        self.log = []                 # events seen since the last mark()
        self.server_settings = {}
        self.first_frame = None
        self.got_settings_ack = False
        self.sentinel_seen_at = None
        sock = socket.create_connection((opts.host, opts.port),
                                        timeout=opts.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if opts.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname=opts.host)
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise Inconclusive("TLS ALPN did not select h2 (got %r)"
                                   % sock.selected_alpn_protocol())
        self.sock = sock

    # -- I/O ---------------------------------------------------------------
    def send(self, *chunks):
        if self.closed:
            return
        try:
            self.sock.sendall(b"".join(chunks))
        except (OSError, ssl.SSLError):
            # The peer may already have closed; the close is read later.
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ssl.SSLWantReadError:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError,
                    OSError):
                data = b""
            if not data:
                self.closed = True
                return True
            self.buf += data
            return True

    def next_event(self, deadline):
        """Next frame from the server, or a 'closed'/'timeout' event."""
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    return self._parse(length)
            if self.closed:
                return self._record(Event("closed"))
            if not self._fill(deadline):
                ev = Event("timeout")
                if self.sentinel_seen_at is not None:
                    ev.kind = "sentinel PING answered, then nothing"
                return self._record(ev)

    def _parse(self, length):
        hdr, payload = self.buf[:9], self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        ftype, flags = hdr[3], hdr[4]
        sid = int.from_bytes(hdr[5:9], "big") & 0x7fffffff
        frame = None
        try:
            frame, _ = Frame.parse_frame_header(memoryview(hdr))
            frame.parse_body(memoryview(payload))
        except Exception:
            frame = None
        ev = Event("frame", frame, ftype, flags, sid, length, payload)
        # Protocol housekeeping the suite does for every case.
        if ftype == SETTINGS and not flags & ACK:
            if frame is not None:
                self.server_settings.update(frame.settings)
            self.send(f_settings(ack=True))
        elif ftype == SETTINGS and flags & ACK:
            self.got_settings_ack = True
        elif (ftype == PING and flags & ACK and payload == b"sentinel"
              and self.sentinel_seen_at is None):
            self.sentinel_seen_at = time.monotonic()
        return self._record(ev)

    def _record(self, ev):
        self.log.append(ev)
        return ev

    # -- protocol helpers ---------------------------------------------------
    def handshake(self, settings=None):
        """Client preface + SETTINGS; wait for the server's SETTINGS and for
        the ACK of ours. Raises Inconclusive when the server does not do so."""
        self.send(PREFACE, f_settings(settings))
        deadline = time.monotonic() + self.opts.timeout
        got_settings = False
        while not (got_settings and self.got_settings_ack):
            ev = self.next_event(deadline)
            if ev.kind != "frame":
                raise Inconclusive("handshake: %s (seen: %s)"
                                   % (ev, self.seen()))
            if self.first_frame is None:
                self.first_frame = ev
            if ev.is_(SETTINGS) and not ev.flags & ACK:
                got_settings = True
            if ev.is_(GOAWAY):
                raise Inconclusive("handshake: %s" % ev)
        self.mark()

    def mark(self):
        self.log = []
        self.sentinel_seen_at = None

    def seen(self, limit=8):
        evs = [str(e) for e in self.log
               if not (e.is_(PING) and e.payload == b"sentinel")
               and not e.is_(WINDOW_UPDATE) and not
               (e.is_(SETTINGS))]
        if len(evs) > limit:
            evs = evs[:limit - 1] + ["...", evs[-1]]
        return ", ".join(evs) if evs else "nothing"

    def sentinel(self):
        """A PING sent after the case's frames: once it is ACKed the server
        has read everything before it, so waiting can stop soon after."""
        self.send(f_ping(b"sentinel"))

    def events(self, timeout=None, grace=0.3):
        deadline = time.monotonic() + (timeout or self.opts.timeout)
        while True:
            if self.sentinel_seen_at is not None:
                deadline = min(deadline, self.sentinel_seen_at + grace)
            ev = self.next_event(deadline)
            yield ev
            if ev.kind != "frame":
                return

    def req_headers(self, method="GET", path="/", extra=()):
        scheme = "https" if self.opts.tls else "http"
        return [(":method", method), (":scheme", scheme), (":path", path),
                (":authority", self.opts.authority)] + list(extra)

    def req_block(self, method="GET", path="/", extra=()):
        return block(self.req_headers(method, path, extra))


# ---------------------------------------------------------------------------
# Expectations: each returns (result, seen)
# ---------------------------------------------------------------------------

def expect_conn_error(c, codes, sentinel=True, goaway_required=False):
    if sentinel:
        c.sentinel()
    for ev in c.events():
        if ev.is_(GOAWAY):
            ok = ev.code in codes
            return (PASS if ok else FAIL), c.seen()
        if ev.kind == "closed":
            if goaway_required:
                return FAIL, c.seen() + " (closed without GOAWAY)"
            return PASS, c.seen() + " (no GOAWAY before close)"
    return FAIL, c.seen()


def expect_stream_error(c, sid, codes, sentinel=True):
    """RST_STREAM on sid with one of codes; a GOAWAY with one of codes (a
    stream error may be escalated, RFC 9113 5.4.1) or a bare close also pass
    (as in h2spec)."""
    if sentinel:
        c.sentinel()
    for ev in c.events():
        if ev.is_(RST_STREAM, sid):
            return (PASS if ev.code in codes else FAIL), c.seen()
        if ev.is_(GOAWAY):
            return (PASS if ev.code in codes else FAIL), c.seen()
        if ev.kind == "closed":
            return PASS, c.seen() + " (no RST_STREAM/GOAWAY before close)"
    return FAIL, c.seen()


def expect_ping_ack(c, data, sentinel=False):
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == data:
            return PASS, c.seen()
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


def expect_headers(c, sid):
    for ev in c.events():
        if ev.is_(HEADERS, sid):
            return PASS, c.seen()
        if ev.is_(RST_STREAM, sid) or ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


def expect_close(c, sentinel=True):
    if sentinel:
        c.sentinel()
    for ev in c.events():
        if ev.kind == "closed":
            return PASS, c.seen()
    return FAIL, c.seen()


def wait_stream_end(c, sid):
    """Wait until the server ends its side of stream sid (END_STREAM or
    RST_STREAM(NO_ERROR)); raises Inconclusive otherwise."""
    for ev in c.events():
        if (ev.is_(HEADERS, sid) or ev.is_(DATA, sid)) and \
                ev.flags & END_STREAM:
            return
        if ev.is_(RST_STREAM, sid) and ev.code == NO_ERROR:
            return
        if ev.is_(RST_STREAM, sid) or ev.is_(GOAWAY) or ev.kind != "frame":
            raise Inconclusive("stream %d did not complete: %s"
                               % (sid, c.seen()))


def wait_settings_ack(c):
    c.got_settings_ack = False
    for ev in c.events():
        if ev.is_(SETTINGS) and ev.flags & ACK:
            return
        if ev.is_(GOAWAY) or ev.kind != "frame":
            raise Inconclusive("no SETTINGS ACK: %s" % c.seen())


def collect_data(c, sid, idle=0.4, total=None):
    """Sum DATA payload received on sid until `idle` seconds pass without
    any (or the stream ends / `total` bytes arrived)."""
    got, lengths, ended = 0, [], False
    for ev in c.events(timeout=idle):
        if ev.is_(DATA, sid):
            got += ev.length
            lengths.append(ev.length)
            if ev.flags & END_STREAM:
                ended = True
                break
            if total is not None and got >= total:
                break
        elif ev.is_(HEADERS, sid) and ev.flags & END_STREAM:
            ended = True
            break
        elif ev.is_(RST_STREAM, sid) or ev.is_(GOAWAY) or \
                ev.kind == "closed":
            break
    return got, lengths, ended


# ---------------------------------------------------------------------------
# Case registry
# ---------------------------------------------------------------------------

CASES = []


def case(cid, desc, expect, note="", handshake=True, settings=None):
    def deco(fn):
        CASES.append(dict(id=cid, description=desc, expect=expect, note=note,
                          fn=fn, handshake=handshake, settings=settings))
        return fn
    return deco


# ===========================================================================
# http2/3.5 HTTP/2 Connection Preface
# ===========================================================================

@case("http2/3.5/1", "Sends client connection preface",
      "server's first frame is SETTINGS")
def _(c):
    ft = c.first_frame
    return (PASS if ft.is_(SETTINGS) and not ft.flags & ACK else FAIL), \
        "first frame: %s" % ft


@case("http2/3.5/2", "Sends invalid connection preface",
      "connection closed (GOAWAY PROTOCOL_ERROR allowed first)",
      handshake=False)
def _(c):
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    for ev in c.events():
        if ev.is_(GOAWAY) and ev.code != PROTOCOL_ERROR:
            return FAIL, c.seen()
        if ev.kind == "closed":
            return PASS, c.seen()
    return FAIL, c.seen()


# ===========================================================================
# http2/4.1 Frame Format
# ===========================================================================

@case("http2/4.1/1", "Sends a frame with unknown type",
      "frame ignored; PING answered")
def _(c):
    c.send(raw_frame(0x16, 0, 0, b"\0" * 8), f_ping(b"h2spec41"))
    return expect_ping_ack(c, b"h2spec41")


@case("http2/4.1/2", "Sends a frame with undefined flag",
      "flag ignored; PING ACK with same payload")
def _(c):
    c.send(raw_frame(PING, 0x16, 0, b"undefflg"))
    return expect_ping_ack(c, b"undefflg")


@case("http2/4.1/3", "Sends a frame with reserved field bit",
      "reserved bit ignored; PING ACK with same payload")
def _(c):
    c.send(raw_frame(PING, 0, 0x80000000, b"reserved"))
    return expect_ping_ack(c, b"reserved")


# ===========================================================================
# http2/4.2 Frame Size
# ===========================================================================

@case("http2/4.2/1", "Sends a DATA frame with 2^14 octets in length",
      "request processed; HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"x" * 16384))
    return expect_headers(c, 1)


@case("http2/4.2/2",
      "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE",
      "stream error (or connection error) FRAME_SIZE_ERROR")
def _(c):
    size = c.server_settings.get(MAX_FRAME_SIZE, 16384) + 1
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"x" * size))
    return expect_stream_error(c, 1, [FRAME_SIZE_ERROR])


@case("http2/4.2/3",
      "Sends a large size HEADERS frame that exceeds the "
      "SETTINGS_MAX_FRAME_SIZE",
      "connection error FRAME_SIZE_ERROR")
def _(c):
    size = c.server_settings.get(MAX_FRAME_SIZE, 16384)
    extra = [("x-dummy%d" % i, "x" * 4000) for i in range(size // 4000 + 1)]
    blk = c.req_block(extra=extra)
    assert len(blk) > size
    c.send(f_headers(1, blk))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


# ===========================================================================
# http2/4.3 Header Compression and Decompression
# ===========================================================================

@case("http2/4.3/1", "Sends invalid header block fragment",
      "connection error COMPRESSION_ERROR")
def _(c):
    # A literal-with-incremental-indexing representation cut after its
    # first octet.
    c.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40"))
    return expect_conn_error(c, [COMPRESSION_ERROR])


@case("http2/4.3/2",
      "Sends a PRIORITY frame while sending the header blocks",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_headers=False), f_priority(1))
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


@case("http2/4.3/3",
      "Sends a HEADERS frame to another stream while sending the header "
      "blocks", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_headers=False),
           f_headers(3, c.req_block()))
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


# ===========================================================================
# http2/5.1 Stream States
# ===========================================================================

IDLE_NOTE = ("RFC 9113 5.1: connection error; h2spec also accepts a stream "
             "error or STREAM_CLOSED, this suite does not")


@case("http2/5.1/1", "idle: Sends a DATA frame",
      "connection error PROTOCOL_ERROR", note=IDLE_NOTE)
def _(c):
    c.send(f_data(1, b"test"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/5.1/2", "idle: Sends a RST_STREAM frame",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_rst(1, CANCEL))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_wu(1, 100))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/5.1/4", "idle: Sends a CONTINUATION frame",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_cont(1, c.req_block()))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/5.1/5", "half closed (remote): Sends a DATA frame",
      "stream error STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block()), f_data(1, b"test"))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/5.1/6", "half closed (remote): Sends a HEADERS frame",
      "stream error STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block()), f_headers(1, c.req_block()))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame",
      "stream error STREAM_CLOSED or connection error PROTOCOL_ERROR",
      note="as h2spec: both 5.1 (STREAM_CLOSED) and 6.10 (PROTOCOL_ERROR) "
           "apply")
def _(c):
    c.send(f_headers(1, c.req_block()), f_cont(1, lit("x-dummy", "1")))
    return expect_stream_error(c, 1, [STREAM_CLOSED, PROTOCOL_ERROR])


@case("http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM "
      "frame", "stream error STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block(), end_stream=False), f_rst(1, CANCEL),
           f_data(1, b"test"))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/5.1/9", "closed: Sends a HEADERS frame after sending "
      "RST_STREAM frame", "stream error STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block(), end_stream=False), f_rst(1, CANCEL),
           f_headers(1, c.req_block()))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/5.1/10", "closed: Sends a CONTINUATION frame after sending "
      "RST_STREAM frame",
      "stream error STREAM_CLOSED or connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_stream=False), f_rst(1, CANCEL),
           f_cont(1, lit("x-dummy", "1")))
    return expect_stream_error(c, 1, [STREAM_CLOSED, PROTOCOL_ERROR])


@case("http2/5.1/11", "closed: Sends a DATA frame",
      "stream error (or connection error) STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block()))
    wait_stream_end(c, 1)
    c.mark()
    c.send(f_data(1, b"test"))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/5.1/12", "closed: Sends a HEADERS frame",
      "connection error STREAM_CLOSED (or PROTOCOL_ERROR)",
      note="h2spec accepts only STREAM_CLOSED; RFC 9113 5.1.1 (stream id "
           "not greater than previous ones) also makes PROTOCOL_ERROR right")
def _(c):
    c.send(f_headers(1, c.req_block()))
    wait_stream_end(c, 1)
    c.mark()
    c.send(f_headers(1, c.req_block()))
    return expect_conn_error(c, [STREAM_CLOSED, PROTOCOL_ERROR])


@case("http2/5.1/13", "closed: Sends a CONTINUATION frame",
      "connection error STREAM_CLOSED or PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block()))
    wait_stream_end(c, 1)
    c.mark()
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [STREAM_CLOSED, PROTOCOL_ERROR])


# ===========================================================================
# http2/5.1.1 Stream Identifiers
# ===========================================================================

@case("http2/5.1.1/1", "Sends even-numbered stream identifier",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(2, c.req_block()))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/5.1.1/2", "Sends stream identifier that is numerically "
      "smaller than previous", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(5, c.req_block()), f_headers(3, c.req_block()))
    return expect_conn_error(c, [PROTOCOL_ERROR])


# ===========================================================================
# http2/5.1.2 Stream Concurrency
# ===========================================================================

@case("http2/5.1.2/1", "Sends HEADERS frames that causes their advertised "
      "concurrent stream limit to be exceeded",
      "stream error PROTOCOL_ERROR or REFUSED_STREAM",
      note="skipped when the server advertises no "
           "SETTINGS_MAX_CONCURRENT_STREAMS (or one above 1000)",
      settings={INITIAL_WINDOW_SIZE: 0})
def _(c):
    limit = c.server_settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        return SKIP, "MAX_CONCURRENT_STREAMS=%s" % limit
    # Window 0 keeps every response body blocked, so the streams stay open.
    frames = [f_headers(1 + 2 * i, c.req_block()) for i in range(limit + 1)]
    c.send(*frames)
    last = 1 + 2 * limit
    c.sentinel()
    for ev in c.events():
        if ev.is_(RST_STREAM) and ev.code in (PROTOCOL_ERROR, REFUSED_STREAM):
            return PASS, "MAX_CONCURRENT_STREAMS=%d; %s" % (limit, ev)
        if ev.is_(GOAWAY):
            return (PASS if ev.code in (PROTOCOL_ERROR, REFUSED_STREAM)
                    else FAIL), c.seen()
        if ev.kind == "closed":
            return PASS, c.seen()
    return FAIL, "MAX_CONCURRENT_STREAMS=%d, stream %d not refused; %s" % (
        limit, last, c.seen())


# ===========================================================================
# http2/5.3.1 Stream Dependencies
# ===========================================================================

@case("http2/5.3.1/1", "Sends HEADERS frame that depends on itself",
      "stream error PROTOCOL_ERROR",
      note="RFC 9113 deprecates the priority scheme but keeps this rule "
           "(5.3.1)")
def _(c):
    c.send(f_headers(1, c.req_block(), depends_on=1, stream_weight=15))
    return expect_stream_error(c, 1, [PROTOCOL_ERROR])


@case("http2/5.3.1/2", "Sends PRIORITY frame that depend on itself",
      "stream error PROTOCOL_ERROR",
      note="RFC 9113 deprecates the priority scheme but keeps this rule "
           "(5.3.1, 6.3)")
def _(c):
    c.send(f_priority(1, depends_on=1))
    return expect_stream_error(c, 1, [PROTOCOL_ERROR])


# ===========================================================================
# http2/5.4.1 Connection Error Handling
# ===========================================================================

@case("http2/5.4.1/1", "Sends an invalid PING frame for connection close",
      "TCP connection closed")
def _(c):
    c.send(raw_frame(PING, 0, 3, b"\0" * 8))
    return expect_close(c)


@case("http2/5.4.1/2", "Sends an invalid PING frame to receive GOAWAY frame",
      "GOAWAY PROTOCOL_ERROR before close")
def _(c):
    c.send(raw_frame(PING, 0, 3, b"\0" * 8))
    return expect_conn_error(c, [PROTOCOL_ERROR], goaway_required=True)


# ===========================================================================
# http2/5.5 Extending HTTP/2
# ===========================================================================

@case("http2/5.5/1", "Sends an unknown extension frame",
      "frame ignored; PING answered")
def _(c):
    c.send(raw_frame(0x16, 0, 0, b"\0" * 8), f_ping(b"h2spec55"))
    return expect_ping_ack(c, b"h2spec55")


@case("http2/5.5/2", "Sends an unknown extension frame in the middle of a "
      "header block", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_headers=False),
           raw_frame(0x16, 0, 0, b"\0" * 8))
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


# ===========================================================================
# http2/6.1 DATA
# ===========================================================================

@case("http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(DATA, END_STREAM, 0, b"test"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.1/2", "Sends a DATA frame on the stream that is not in "
      "\"open\" or \"half-closed (local)\" state",
      "stream error STREAM_CLOSED")
def _(c):
    c.send(f_headers(1, c.req_block()), f_data(1, b"test"))
    return expect_stream_error(c, 1, [STREAM_CLOSED])


@case("http2/6.1/3", "Sends a DATA frame with invalid pad length",
      "connection error PROTOCOL_ERROR")
def _(c):
    # Payload length 5: pad length 6 followed by 4 octets.
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           raw_frame(DATA, END_STREAM | PADDED, 1, b"\x06test"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


# ===========================================================================
# http2/6.2 HEADERS
# ===========================================================================

@case("http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, "
      "and a PRIORITY frame", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_headers=False), f_priority(1))
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


@case("http2/6.2/2", "Sends a HEADERS frame to another stream while sending "
      "a HEADERS frame", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block(), end_headers=False),
           f_headers(3, c.req_block()))
    c.send(f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


@case("http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 0, c.req_block()))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.2/4", "Sends a HEADERS frame with invalid pad length",
      "connection error PROTOCOL_ERROR",
      note="RFC 9113 6.2 says connection error; h2spec also accepts "
           "RST_STREAM(PROTOCOL_ERROR), this suite does not")
def _(c):
    blk = c.req_block()
    payload = bytes([len(blk) + 1]) + blk   # pad length > remaining payload
    c.send(raw_frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, payload))
    return expect_conn_error(c, [PROTOCOL_ERROR])


# ===========================================================================
# http2/6.3 PRIORITY
# ===========================================================================

@case("http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x0f"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 "
      "octets", "stream error (or connection error) FRAME_SIZE_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           raw_frame(PRIORITY, 0, 1, b"\x80\x00\x00\x01"))
    return expect_stream_error(c, 1, [FRAME_SIZE_ERROR])


# ===========================================================================
# http2/6.4 RST_STREAM
# ===========================================================================

@case("http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(RST_STREAM, 0, 0, struct.pack(">I", CANCEL)))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.4/2", "Sends a RST_STREAM frame on a idle stream",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_rst(1, CANCEL))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 "
      "octets", "connection error FRAME_SIZE_ERROR",
      note="RFC 9113 6.4 says connection error; h2spec also accepts "
           "RST_STREAM(FRAME_SIZE_ERROR), this suite does not")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00"))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


# ===========================================================================
# http2/6.5 SETTINGS
# ===========================================================================

@case("http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload",
      "connection error FRAME_SIZE_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, ACK, 0, b"\x00\x04\x00\x00\xff\xff"))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


@case("http2/6.5/2", "Sends a SETTINGS frame with a stream identifier "
      "other than 0x0", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 1, b"\x00\x03\x00\x00\x00\x64"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.5/3", "Sends a SETTINGS frame with a length other than a "
      "multiple of 6 octets", "connection error FRAME_SIZE_ERROR",
      note="RFC 9113 6.5 says connection error FRAME_SIZE_ERROR; h2spec "
           "also accepts PROTOCOL_ERROR and stream errors, this suite "
           "does not")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


# http2/6.5.2 Defined SETTINGS Parameters

@case("http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other "
      "than 0 or 1", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", ENABLE_PUSH, 2)))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value "
      "above the maximum flow control window size",
      "connection error FLOW_CONTROL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0,
                     struct.pack(">HI", INITIAL_WINDOW_SIZE, 2 ** 31)))
    return expect_conn_error(c, [FLOW_CONTROL_ERROR])


@case("http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value "
      "below the initial value", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0,
                     struct.pack(">HI", MAX_FRAME_SIZE, 16383)))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value "
      "above the maximum allowed frame size",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0,
                     struct.pack(">HI", MAX_FRAME_SIZE, 16777216)))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier",
      "setting ignored; SETTINGS ACK and PING answered")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 0xff, 1)),
           f_ping(b"h2spec65"))
    return expect_ping_ack(c, b"h2spec65")


# http2/6.5.3 Settings Synchronization

@case("http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE",
      "values applied in order: SETTINGS ACK, then response DATA of 1 octet",
      note="needs a response body of 2+ octets")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0,
                     struct.pack(">HIHI", INITIAL_WINDOW_SIZE, 100,
                                 INITIAL_WINDOW_SIZE, 1)))
    wait_settings_ack(c)
    c.send(f_headers(1, c.req_block()))
    return check_first_data_len(c, 1, 1)


def check_first_data_len(c, sid, want):
    for ev in c.events():
        if ev.is_(DATA, sid):
            if ev.length == want:
                return PASS, c.seen()
            if ev.length == 0 and not ev.flags & END_STREAM:
                continue
            return FAIL, c.seen()
        if ev.is_(HEADERS, sid) and ev.flags & END_STREAM:
            return SKIP, "response has no body: " + c.seen()
        if ev.is_(RST_STREAM, sid) or ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag",
      "SETTINGS frame with ACK")
def _(c):
    c.send(f_settings({INITIAL_WINDOW_SIZE: 65535}))
    for ev in c.events():
        if ev.is_(SETTINGS) and ev.flags & ACK:
            return PASS, c.seen() + ", SETTINGS(ACK)"
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


# ===========================================================================
# http2/6.7 PING
# ===========================================================================

@case("http2/6.7/1", "Sends a PING frame",
      "PING with ACK and identical payload")
def _(c):
    c.send(f_ping(b"h2spec67"))
    return expect_ping_ack(c, b"h2spec67")


@case("http2/6.7/2", "Sends a PING frame with ACK",
      "no response to it (a following PING is answered, that one is not)")
def _(c):
    c.send(f_ping(b"unsolici", ack=True), f_ping(b"expected"))
    for ev in c.events():
        if ev.is_(PING) and ev.payload == b"unsolici":
            return FAIL, c.seen()
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"expected":
            return PASS, c.seen()
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("http2/6.7/3", "Sends a PING frame with a stream identifier field "
      "value other than 0x0", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(PING, 0, 1, b"\0" * 8))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.7/4", "Sends a PING frame with a length field value other "
      "than 8", "connection error FRAME_SIZE_ERROR")
def _(c):
    c.send(raw_frame(PING, 0, 0, b"\0" * 6))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


# ===========================================================================
# http2/6.8 GOAWAY
# ===========================================================================

@case("http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other "
      "than 0x0", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_goaway(0, NO_ERROR, sid=1))
    return expect_conn_error(c, [PROTOCOL_ERROR])


# ===========================================================================
# http2/6.9 WINDOW_UPDATE
# ===========================================================================

@case("http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control "
      "window increment of 0", "connection error PROTOCOL_ERROR")
def _(c):
    c.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\0"))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.9/2", "Sends a WINDOW_UPDATE frame with a flow control "
      "window increment of 0 on a stream", "stream error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           raw_frame(WINDOW_UPDATE, 0, 1, b"\0\0\0\0"))
    return expect_stream_error(c, 1, [PROTOCOL_ERROR])


@case("http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than "
      "4 octets", "connection error FRAME_SIZE_ERROR")
def _(c):
    c.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\x01\0"))
    return expect_conn_error(c, [FRAME_SIZE_ERROR])


# http2/6.9.1 The Flow-Control Window

@case("http2/6.9.1/1", "Sends SETTINGS frame to set the initial window size "
      "to 1 and sends HEADERS frame",
      "response DATA frame of 1 octet", note="needs a response body")
def _(c):
    c.send(f_settings({INITIAL_WINDOW_SIZE: 1}))
    wait_settings_ack(c)
    c.send(f_headers(1, c.req_block()))
    return check_first_data_len(c, 1, 1)


@case("http2/6.9.1/2", "Sends multiple WINDOW_UPDATE frames increasing the "
      "flow control window to above 2^31-1",
      "connection error FLOW_CONTROL_ERROR")
def _(c):
    c.send(f_wu(0, 2 ** 31 - 1), f_wu(0, 2 ** 31 - 1))
    return expect_conn_error(c, [FLOW_CONTROL_ERROR])


@case("http2/6.9.1/3", "Sends multiple WINDOW_UPDATE frames increasing the "
      "flow control window to above 2^31-1 on a stream",
      "stream error (or connection error) FLOW_CONTROL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_wu(1, 2 ** 31 - 1), f_wu(1, 2 ** 31 - 1))
    return expect_stream_error(c, 1, [FLOW_CONTROL_ERROR])


# http2/6.9.2 Initial Flow-Control Window Size

@case("http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending "
      "HEADERS frame",
      "window 0, then raised to 1: response DATA frame of 1 octet",
      note="needs a response body")
def _(c):
    c.send(f_settings({INITIAL_WINDOW_SIZE: 0}))
    wait_settings_ack(c)
    c.send(f_headers(1, c.req_block()))
    for ev in c.events(timeout=0.3):
        if ev.is_(DATA, 1) and ev.length > 0:
            return FAIL, "DATA sent with window 0: " + c.seen()
        if ev.is_(HEADERS, 1) and ev.flags & END_STREAM:
            return SKIP, "response has no body: " + c.seen()
    c.send(f_settings({INITIAL_WINDOW_SIZE: 1}))
    return check_first_data_len(c, 1, 1)


@case("http2/6.9.2/2", "Sends a SETTINGS frame for window size to be "
      "negative", "window 3 -> 3 octets sent -> window 2 (i.e. -1) -> "
      "WINDOW_UPDATE 2 -> exactly 1 more octet",
      note="needs a response body of 5+ octets")
def _(c):
    c.send(f_settings({INITIAL_WINDOW_SIZE: 3}))
    wait_settings_ack(c)
    c.send(f_headers(1, c.req_block()))
    got, lengths, ended = collect_data(c, 1, idle=0.5, total=3)
    if got > 3:
        return FAIL, "sent %d octets with window 3: %s" % (got, c.seen())
    if ended:
        return SKIP, "response body too short: " + c.seen()
    if got != 3:
        return FAIL, "expected 3 octets with window 3, got %d: %s" % (
            got, c.seen())
    c.send(f_settings({INITIAL_WINDOW_SIZE: 2}))
    wait_settings_ack(c)
    more, lengths, ended = collect_data(c, 1, idle=0.3)
    if more:
        return FAIL, "sent %d octets with a negative window" % more
    c.send(f_wu(1, 2))
    more, lengths, ended = collect_data(c, 1, idle=0.5)
    return (PASS if more == 1 else FAIL), \
        "after WINDOW_UPDATE(2) got %d octet(s): %s" % (more, c.seen())


@case("http2/6.9.2/3", "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with "
      "an exceeded maximum window size value",
      "connection error FLOW_CONTROL_ERROR")
def _(c):
    c.send(raw_frame(SETTINGS, 0, 0,
                     struct.pack(">HI", INITIAL_WINDOW_SIZE, 2 ** 31)))
    return expect_conn_error(c, [FLOW_CONTROL_ERROR])


# ===========================================================================
# http2/6.10 CONTINUATION
# ===========================================================================

@case("http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a "
      "HEADERS frame", "request processed; HEADERS response")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:2]), end_headers=False),
           f_cont(1, block(hs[2:3]), end_headers=False),
           f_cont(1, block(hs[3:]), end_headers=False),
           f_cont(1, lit("x-dummy", "1")))
    return expect_headers(c, 1)


@case("http2/6.10/2", "Sends a CONTINUATION frame followed by any frame "
      "other than CONTINUATION", "connection error PROTOCOL_ERROR")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:2]), end_stream=False, end_headers=False),
           f_cont(1, block(hs[2:]), end_headers=False),
           f_data(1, b"test"))
    return expect_conn_error(c, [PROTOCOL_ERROR], sentinel=False)


@case("http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream "
      "identifier", "connection error PROTOCOL_ERROR")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:2]), end_headers=False),
           raw_frame(CONTINUATION, END_HEADERS, 0, block(hs[2:])))
    return expect_conn_error(c, [PROTOCOL_ERROR])


@case("http2/6.10/4", "Sends a CONTINUATION frame preceded by a HEADERS "
      "frame with END_HEADERS flag", "connection error PROTOCOL_ERROR",
      note="h2spec accepts PROTOCOL_ERROR only (the frame also hits a "
           "half-closed stream, STREAM_CLOSED is tolerated here too)")
def _(c):
    c.send(f_headers(1, c.req_block()), f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR, STREAM_CLOSED])


@case("http2/6.10/5", "Sends a CONTINUATION frame preceded by a "
      "CONTINUATION frame with END_HEADERS flag",
      "connection error PROTOCOL_ERROR")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:2]), end_headers=False),
           f_cont(1, block(hs[2:])), f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR, STREAM_CLOSED])


@case("http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"test"), f_cont(1, lit("x-dummy", "1")))
    return expect_conn_error(c, [PROTOCOL_ERROR, STREAM_CLOSED])


# ===========================================================================
# http2/7 Error Codes
# ===========================================================================

@case("http2/7/1", "Sends a GOAWAY frame with unknown error code",
      "no special behaviour: PING answered or connection closed")
def _(c):
    c.send(f_goaway(0, 0xff), f_ping(b"h2spec71"))
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"h2spec71":
            return PASS, c.seen()
        if ev.kind == "closed":
            return PASS, c.seen()
        if ev.is_(GOAWAY) and ev.code != NO_ERROR:
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("http2/7/2", "Sends a RST_STREAM frame with unknown error code",
      "no special behaviour: PING answered")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_rst(1, 0xff), f_ping(b"h2spec72"))
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"h2spec72":
            return PASS, c.seen()
        if ev.kind == "closed":
            return PASS, c.seen()
        if ev.is_(GOAWAY):
            return FAIL, c.seen()
    return FAIL, c.seen()


# ===========================================================================
# http2/8.1 HTTP Request/Response Exchange
# ===========================================================================

@case("http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM "
      "flag", "stream error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"test", end_stream=False),
           f_headers(1, block([("x-trailer", "1")]), end_stream=False))
    return expect_stream_error(c, 1, [PROTOCOL_ERROR])


def malformed(cid, desc, headers_fn, note="", data=None):
    """Register a case sending a malformed request on stream 1; RFC 9113
    8.1.1: stream error PROTOCOL_ERROR (a response before the reset is
    allowed, a response alone is not)."""
    @case(cid, desc, "stream error PROTOCOL_ERROR", note=note)
    def _(c):
        hs = headers_fn(c)
        if data is None:
            c.send(f_headers(1, block(hs)))
        else:
            c.send(f_headers(1, block(hs), end_stream=False))
            for i, d in enumerate(data):
                c.send(f_data(1, d, end_stream=(i == len(data) - 1)))
        return expect_stream_error(c, 1, [PROTOCOL_ERROR])


def _replace(hs, name, value):
    return [(n, value if n == name else v) for n, v in hs]


def _drop(hs, name):
    return [(n, v) for n, v in hs if n != name]


def _dup(hs, name):
    out = []
    for n, v in hs:
        out.append((n, v))
        if n == name:
            out.append((n, v))
    return out


# http2/8.1.2 HTTP Header Fields
malformed("http2/8.1.2/1", "Sends a HEADERS frame that contains the header "
          "field name in uppercase letters",
          lambda c: c.req_headers(extra=[("X-TEST", "ok")]))

# http2/8.1.2.1 Pseudo-Header Fields
malformed("http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown "
          "pseudo-header field",
          lambda c: c.req_headers()[:4] + [(":test", "ok")])
malformed("http2/8.1.2.1/2", "Sends a HEADERS frame that contains the "
          "pseudo-header field defined for response",
          lambda c: c.req_headers()[:4] + [(":status", "200")])


@case("http2/8.1.2.1/3", "Sends a HEADERS frame that contains a "
      "pseudo-header field as trailers", "stream error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"test", end_stream=False),
           f_headers(1, block([(":method", "POST")])))
    return expect_stream_error(c, 1, [PROTOCOL_ERROR])


malformed("http2/8.1.2.1/4", "Sends a HEADERS frame that contains a "
          "pseudo-header field that appears in a header block after a "
          "regular header field",
          lambda c: c.req_headers()[:3] + [("x-test", "ok")] +
          c.req_headers()[3:4])

# http2/8.1.2.2 Connection-Specific Header Fields
malformed("http2/8.1.2.2/1", "Sends a HEADERS frame that contains the "
          "connection-specific header field",
          lambda c: c.req_headers(extra=[("connection", "keep-alive")]))
malformed("http2/8.1.2.2/2", "Sends a HEADERS frame that contains the TE "
          "header field with any value other than \"trailers\"",
          lambda c: c.req_headers(extra=[("te", "trailers, deflate")]))

# http2/8.1.2.3 Request Pseudo-Header Fields
malformed("http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" "
          "pseudo-header field",
          lambda c: _replace(c.req_headers(), ":path", ""))
malformed("http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" "
          "pseudo-header field",
          lambda c: _drop(c.req_headers(), ":method"))
malformed("http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" "
          "pseudo-header field",
          lambda c: _drop(c.req_headers(), ":scheme"))
malformed("http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" "
          "pseudo-header field",
          lambda c: _drop(c.req_headers(), ":path"))
malformed("http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated "
          "\":method\" pseudo-header field",
          lambda c: _dup(c.req_headers(), ":method"))
malformed("http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated "
          "\":scheme\" pseudo-header field",
          lambda c: _dup(c.req_headers(), ":scheme"))
malformed("http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated "
          "\":path\" pseudo-header field",
          lambda c: _dup(c.req_headers(), ":path"))

# http2/8.1.2.6 Malformed Requests and Responses
malformed("http2/8.1.2.6/1", "Sends a HEADERS frame with the "
          "\"content-length\" header field which does not equal the DATA "
          "frame payload length",
          lambda c: c.req_headers("POST", extra=[("content-length", "1")]),
          data=[b"test"])
malformed("http2/8.1.2.6/2", "Sends a HEADERS frame with the "
          "\"content-length\" header field which does not equal the sum of "
          "the multiple DATA frames payload length",
          lambda c: c.req_headers("POST", extra=[("content-length", "1")]),
          data=[b"test", b"test"])


# ===========================================================================
# http2/8.2 Server Push
# ===========================================================================

@case("http2/8.2/1", "Sends a PUSH_PROMISE frame",
      "connection error PROTOCOL_ERROR")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False))
    c.send(hf(PushPromiseFrame, 1, ["END_HEADERS"], promised_stream_id=2,
              data=c.req_block()))
    return expect_conn_error(c, [PROTOCOL_ERROR])


# ===========================================================================
# generic: basic interoperability (the server must accept these)
# ===========================================================================

@case("generic/1/1", "Sends a client connection preface",
      "server SETTINGS, and ACK of the client's SETTINGS")
def _(c):
    ok = c.first_frame.is_(SETTINGS) and c.got_settings_ack
    return (PASS if ok else FAIL), "first frame %s, SETTINGS ACK %s" % (
        c.first_frame, "received" if c.got_settings_ack else "missing")


@case("generic/2/1", "Sends a PRIORITY frame on idle stream",
      "accepted; PING answered")
def _(c):
    c.send(f_priority(1), f_ping(b"generic2"))
    return expect_ping_ack(c, b"generic2")


@case("generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) "
      "stream", "accepted; response DATA", note="needs a response body")
def _(c):
    c.send(f_headers(1, c.req_block()), f_wu(1, 1))
    return expect_data(c, 1)


def expect_data(c, sid):
    for ev in c.events():
        if ev.is_(DATA, sid):
            return PASS, c.seen()
        if ev.is_(HEADERS, sid) and ev.flags & END_STREAM:
            return SKIP, "response has no body: " + c.seen()
        if ev.is_(RST_STREAM, sid) or ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream",
      "accepted; response DATA", note="needs a response body")
def _(c):
    c.send(f_headers(1, c.req_block()), f_priority(1))
    return expect_data(c, 1)


@case("generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) "
      "stream", "accepted; PING answered")
def _(c):
    c.send(f_headers(1, c.req_block()), f_rst(1, CANCEL), f_ping(b"generic4"))
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"generic4":
            return PASS, c.seen()
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("generic/2/5", "Sends a PRIORITY frame on closed stream",
      "accepted; PING answered")
def _(c):
    c.send(f_headers(1, c.req_block()))
    wait_stream_end(c, 1)
    c.mark()
    c.send(f_priority(1), f_ping(b"generic5"))
    return expect_ping_ack(c, b"generic5")


@case("generic/3.1/1", "Sends a DATA frame", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"test"))
    return expect_headers(c, 1)


@case("generic/3.1/2", "Sends multiple DATA frames", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_data(1, b"test", end_stream=False), f_data(1, b"test"))
    return expect_headers(c, 1)


@case("generic/3.1/3", "Sends a DATA frame with padding", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           hf(DataFrame, 1, ["END_STREAM", "PADDED"], data=b"test",
              pad_length=8))
    return expect_headers(c, 1)


@case("generic/3.2/1", "Sends a HEADERS frame", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.2/2", "Sends a HEADERS frame with padding",
      "HEADERS response")
def _(c):
    c.send(hf(HeadersFrame, 1, ["END_STREAM", "END_HEADERS", "PADDED"],
              data=c.req_block(), pad_length=8))
    return expect_headers(c, 1)


@case("generic/3.2/3", "Sends a HEADERS frame with priority",
      "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block(), depends_on=0, stream_weight=255,
                     exclusive=False))
    return expect_headers(c, 1)


@case("generic/3.3/1", "Sends a PRIORITY frame with priority 1",
      "HEADERS response")
def _(c):
    c.send(f_priority(1, weight=0), f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.3/2", "Sends a PRIORITY frame with priority 256",
      "HEADERS response")
def _(c):
    c.send(f_priority(1, weight=255), f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.3/3", "Sends a PRIORITY frame with stream dependency",
      "HEADERS response")
def _(c):
    c.send(f_priority(3, depends_on=1), f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.3/4", "Sends a PRIORITY frame with exclusive",
      "HEADERS response")
def _(c):
    c.send(f_priority(1, depends_on=0, exclusive=True),
           f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.3/5", "Sends a PRIORITY frame for an idle stream, then send "
      "a HEADER frame for a lower stream ID", "HEADERS response")
def _(c):
    c.send(f_priority(3), f_headers(1, c.req_block()))
    return expect_headers(c, 1)


@case("generic/3.4/1", "Sends a RST_STREAM frame", "accepted; PING answered")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_rst(1, CANCEL), f_ping(b"generic6"))
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"generic6":
            return PASS, c.seen()
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("generic/3.5/1", "Sends a SETTINGS frame", "SETTINGS ACK")
def _(c):
    c.send(f_settings({ENABLE_PUSH: 0, MAX_CONCURRENT_STREAMS: 100}))
    for ev in c.events():
        if ev.is_(SETTINGS) and ev.flags & ACK:
            return PASS, "SETTINGS(ACK)"
        if ev.is_(GOAWAY) or ev.kind == "closed":
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("generic/3.7/1", "Sends a PING frame", "PING ACK")
def _(c):
    c.send(f_ping(b"generic7"))
    return expect_ping_ack(c, b"generic7")


@case("generic/3.8/1", "Sends a GOAWAY frame",
      "no error: PING answered or connection closed")
def _(c):
    c.send(f_goaway(0, NO_ERROR), f_ping(b"generic8"))
    for ev in c.events():
        if ev.is_(PING) and ev.flags & ACK and ev.payload == b"generic8":
            return PASS, c.seen()
        if ev.kind == "closed":
            return PASS, c.seen()
        if ev.is_(GOAWAY) and ev.code != NO_ERROR:
            return FAIL, c.seen()
    return FAIL, c.seen()


@case("generic/3.9/1", "Sends a WINDOW_UPDATE frame with stream ID 0",
      "accepted; PING answered")
def _(c):
    c.send(f_wu(0, 1), f_ping(b"generic9"))
    return expect_ping_ack(c, b"generic9")


@case("generic/3.9/2", "Sends a WINDOW_UPDATE frame with stream ID 1",
      "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST"), end_stream=False),
           f_wu(1, 1), f_data(1, b"test"))
    return expect_headers(c, 1)


@case("generic/3.10/1", "Sends a CONTINUATION frame", "HEADERS response")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:2]), end_headers=False),
           f_cont(1, block(hs[2:])))
    return expect_headers(c, 1)


@case("generic/3.10/2", "Sends multiple CONTINUATION frames",
      "HEADERS response")
def _(c):
    hs = c.req_headers()
    c.send(f_headers(1, block(hs[:1]), end_headers=False),
           f_cont(1, block(hs[1:2]), end_headers=False),
           f_cont(1, block(hs[2:3]), end_headers=False),
           f_cont(1, block(hs[3:])))
    return expect_headers(c, 1)


@case("generic/4/1", "Sends a GET request", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("GET")))
    return expect_headers(c, 1)


@case("generic/4/2", "Sends a HEAD request", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("HEAD")))
    return expect_headers(c, 1)


@case("generic/4/3", "Sends a POST request", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST", extra=[("content-length", "4")]),
                     end_stream=False), f_data(1, b"test"))
    return expect_headers(c, 1)


@case("generic/4/4", "Sends a POST request with trailers", "HEADERS response")
def _(c):
    c.send(f_headers(1, c.req_block("POST", extra=[("content-length", "4")]),
                     end_stream=False), f_data(1, b"test", end_stream=False),
           f_headers(1, block([("x-trailer", "ok")])))
    return expect_headers(c, 1)


# generic/5 HPACK: one representation type per case, inside a valid request.

def hpack_case(cid, desc, rep, prefix=False):
    @case(cid, desc, "HEADERS response")
    def _(c):
        blk = c.req_block()
        blk = rep + blk if prefix else blk + rep
        c.send(f_headers(1, blk))
        return expect_headers(c, 1)


UA = 58   # static table index of "user-agent"
hpack_case("generic/5/1", "Sends a indexed header field representation",
           b"\x90")  # index 16: accept-encoding: gzip, deflate
hpack_case("generic/5/2", "Sends a literal header field with incremental "
           "indexing - indexed name", enc_int(UA, 6, 0x40) + enc_str("h2c"))
hpack_case("generic/5/3", "Sends a literal header field with incremental "
           "indexing - indexed name (with Huffman coding)",
           enc_int(UA, 6, 0x40) + enc_str("h2c", True))
hpack_case("generic/5/4", "Sends a literal header field with incremental "
           "indexing - new name", b"\x40" + enc_str("x-test") + enc_str("ok"))
hpack_case("generic/5/5", "Sends a literal header field with incremental "
           "indexing - new name (with Huffman coding)",
           b"\x40" + enc_str("x-test", True) + enc_str("ok", True))
hpack_case("generic/5/6", "Sends a literal header field without indexing - "
           "indexed name", enc_int(UA, 4, 0x00) + enc_str("h2c"))
hpack_case("generic/5/7", "Sends a literal header field without indexing - "
           "indexed name (with Huffman coding)",
           enc_int(UA, 4, 0x00) + enc_str("h2c", True))
hpack_case("generic/5/8", "Sends a literal header field without indexing - "
           "new name", b"\x00" + enc_str("x-test") + enc_str("ok"))
hpack_case("generic/5/9", "Sends a literal header field without indexing - "
           "new name (huffman encoded)",
           b"\x00" + enc_str("x-test", True) + enc_str("ok", True))
hpack_case("generic/5/10", "Sends a literal header field never indexed - "
           "indexed name", enc_int(UA, 4, 0x10) + enc_str("h2c"))
hpack_case("generic/5/11", "Sends a literal header field never indexed - "
           "indexed name (huffman encoded)",
           enc_int(UA, 4, 0x10) + enc_str("h2c", True))
hpack_case("generic/5/12", "Sends a literal header field never indexed - "
           "new name", b"\x10" + enc_str("x-test") + enc_str("ok"))
hpack_case("generic/5/13", "Sends a literal header field never indexed - "
           "new name (huffman encoded)",
           b"\x10" + enc_str("x-test", True) + enc_str("ok", True))
hpack_case("generic/5/14", "Sends a dynamic table size update",
           enc_int(0, 5, 0x20), prefix=True)
hpack_case("generic/5/15", "Sends multiple dynamic table size update",
           enc_int(0, 5, 0x20) + enc_int(4096, 5, 0x20), prefix=True)


# ===========================================================================
# hpack: decoding errors are connection errors of type COMPRESSION_ERROR
# ===========================================================================

def hpack_error_case(cid, desc, rep_fn, prefix=False):
    @case(cid, desc, "connection error COMPRESSION_ERROR")
    def _(c):
        rep = rep_fn(c)
        blk = c.req_block()
        blk = rep + blk if prefix else blk + rep
        c.send(f_headers(1, blk))
        return expect_conn_error(c, [COMPRESSION_ERROR])


def _huff_value(bits_fn):
    def mk(c):
        return b"\x00" + enc_str("x-test") + bits_fn()
    return mk


def _pad_too_long():
    val, n = huffman_bits("test")
    data = bits_to_bytes(val, n) + b"\xff"      # 8+ bits of EOS prefix
    return enc_int(len(data), 7, 0x80) + data


def _pad_zero():
    val, n = huffman_bits("test")
    assert n % 8
    data = bits_to_bytes(val, n, pad_bit=0)
    return enc_int(len(data), 7, 0x80) + data


def _with_eos():
    val, n = huffman_bits("test")
    val = (val << 30) | 0x3fffffff              # EOS symbol, 30 bits
    data = bits_to_bytes(val, n + 30)
    return enc_int(len(data), 7, 0x80) + data


hpack_error_case("hpack/2.3.3/1", "Sends a indexed header field "
                 "representation with invalid index",
                 lambda c: enc_int(70, 7, 0x80))
hpack_error_case("hpack/2.3.3/2", "Sends a literal header field "
                 "representation with invalid index",
                 lambda c: enc_int(70, 6, 0x40) + enc_str(""))
hpack_error_case("hpack/4.2/1", "Sends a dynamic table size update at the "
                 "end of header block", lambda c: enc_int(1, 5, 0x20))
hpack_error_case("hpack/5.2/1", "Sends a Huffman-encoded string literal "
                 "representation with padding longer than 7 bits",
                 _huff_value(_pad_too_long))
hpack_error_case("hpack/5.2/2", "Sends a Huffman-encoded string literal "
                 "representation padded by zero", _huff_value(_pad_zero))
hpack_error_case("hpack/5.2/3", "Sends a Huffman-encoded string literal "
                 "representation containing the EOS symbol",
                 _huff_value(_with_eos))
hpack_error_case("hpack/6.1/1", "Sends a indexed header field representation "
                 "with index 0", lambda c: b"\x80")
hpack_error_case("hpack/6.3/1", "Sends a dynamic table size update larger "
                 "than the value of SETTINGS_HEADER_TABLE_SIZE",
                 lambda c: enc_int(4097, 5, 0x20), prefix=True)


# ===========================================================================
# Runner
# ===========================================================================

def run_case(cd, opts):
    t0 = time.monotonic()
    c = None
    try:
        c = Conn(opts)
        if cd["handshake"]:
            c.handshake(cd["settings"])
        result, seen = cd["fn"](c)
    except Inconclusive as e:
        result, seen = ERROR, "inconclusive: %s" % e
    except (OSError, ssl.SSLError) as e:
        result, seen = ERROR, "socket error: %s" % e
    except Exception as e:  # a bug in the case itself
        result, seen = ERROR, "exception: %s: %s" % (type(e).__name__, e)
    finally:
        if c is not None:
            c.close()
    return result, seen, time.monotonic() - t0


def matches(cid, pattern):
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(cid, pattern)
    return cid == pattern or cid.startswith(pattern.rstrip("/") + "/") \
        or pattern in cid


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--tls", action="store_true",
                    help="TLS with ALPN h2 (no certificate verification)")
    ap.add_argument("--json", metavar="OUT", help="write results as JSON")
    ap.add_argument("--only", metavar="PATTERN",
                    help="case id prefix, substring or glob (e.g. http2/5.1 "
                         "or 'hpack/*')")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="per-wait socket timeout in seconds (default 2)")
    ap.add_argument("--authority", help=":authority to send "
                    "(default HOST:PORT)")
    ap.add_argument("--list", action="store_true", help="list cases and exit")
    opts = ap.parse_args(argv)
    opts.authority = opts.authority or "%s:%d" % (opts.host, opts.port)

    cases = [cd for cd in CASES
             if not opts.only or matches(cd["id"], opts.only)]
    if opts.list:
        for cd in cases:
            print("%-16s %s" % (cd["id"], cd["description"]))
        return 0

    target = "%s:%d (%s)" % (opts.host, opts.port, "h2/TLS" if opts.tls
                             else "h2c prior knowledge")
    print("HTTP/2 conformance: %d case(s) against %s" % (len(cases), target))
    started = time.monotonic()
    results = []
    counts = {PASS: 0, FAIL: 0, ERROR: 0, SKIP: 0}
    for cd in cases:
        result, seen, secs = run_case(cd, opts)
        counts[result] += 1
        results.append(dict(id=cd["id"], description=cd["description"],
                            expect=cd["expect"], note=cd["note"],
                            result=result, seen=seen,
                            seconds=round(secs, 3)))
        print("%-5s %-16s %s | expect: %s | seen: %s" % (
            result.upper(), cd["id"], cd["description"], cd["expect"], seen))
        sys.stdout.flush()
    elapsed = time.monotonic() - started
    print("summary: %d cases, %d passed, %d failed, %d errors, %d skipped "
          "(%.1fs)" % (len(cases), counts[PASS], counts[FAIL], counts[ERROR],
                       counts[SKIP], elapsed))
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(dict(target=dict(host=opts.host, port=opts.port,
                                       tls=opts.tls),
                           summary=dict(total=len(cases), seconds=round(
                               elapsed, 1), **counts),
                           cases=results), fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
