#!/usr/bin/python3
"""Negative control for conformance.py: a deliberately broken h2c server.

It sends SETTINGS, ACKs SETTINGS and PING, answers every HEADERS frame that
ends a header block with ``200`` plus an 11-octet body (ignoring flow
control), and silently ignores everything else: no GOAWAY, no RST_STREAM, no
validation. Run the suite against it to check that the error cases can
fail and that a server which never answers keeps the run bounded:

    /usr/bin/python3 tests/h2/lenient_server.py 127.0.0.1 PORT &
    /usr/bin/python3 tests/h2/conformance.py 127.0.0.1 PORT

Stdlib only; serves until killed (or --seconds, default 120, elapse).
"""

import socket
import struct
import sys
import threading
import time


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(
        ">BBI", ftype, flags, sid) + payload


def serve(conn):
    conn.settimeout(10)
    buf = b""
    try:
        while len(buf) < 24:
            d = conn.recv(65536)
            if not d:
                return
            buf += d
        buf = buf[24:]
        conn.sendall(frame(4, 0, 0, struct.pack(">HI", 3, 100)))
        while True:
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(
                    buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                payload, buf = buf[9:9 + n], buf[9 + n:]
                if ftype == 4 and not flags & 1:
                    conn.sendall(frame(4, 1, 0))
                elif ftype == 6 and not flags & 1:
                    conn.sendall(frame(6, 1, 0, payload))
                elif ftype in (1, 9) and flags & 4 and sid:
                    conn.sendall(frame(1, 4, sid, b"\x88") +
                                 frame(0, 1, sid, b"hello world"))
            d = conn.recv(65536)
            if not d:
                return
            buf += d
    except OSError:
        pass
    finally:
        conn.close()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    ls.settimeout(0.5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    ls.close()


if __name__ == "__main__":
    main()
