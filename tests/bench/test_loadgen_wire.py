#!/usr/bin/env python3
"""The load generator's WebSocket and SSE subscribers against a scripted fake server on loopback: what
they send (masked client frames with the connect, subscribe and pong commands; the URL-encoded
cf_connect; the emulation POSTs) and what they make of what a server sends (fragmented messages with a
ping between the fragments, several replies in one message, SSE events split across reads, a Close with
its code, and frames no server may send). The figures of tests/bench/compare.py rest on these readers,
so a reader that miscounts would make every WebSocket and SSE row wrong without failing the smoke run.

    python3 tests/bench/test_loadgen_wire.py build/tests/bench/loadgen

Each case runs one loadgen process with one stream and checks its JSON report; the fake server speaks
just enough HTTP/1.1 for that. Only the python3 standard library is used.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse


def recv_head(c):
    """Reads one HTTP request head (and any bytes after it); returns (request line, headers, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            raise EOFError("client closed before the request head ended")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return lines[0], headers, rest


def recv_body(c, headers, rest):
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        rest += c.recv(65536)
    return rest[:n], rest[n:]


class ClientFrames:
    """Reads the client's WebSocket frames; each must be masked (RFC 6455 5.3)."""

    def __init__(self, c, rest=b""):
        self.c, self.buf = c, rest

    def _need(self, n):
        while len(self.buf) < n:
            d = self.c.recv(65536)
            if not d:
                raise EOFError("client closed")
            self.buf += d

    def next(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if not b1 & 0x80:
            raise AssertionError("a client frame without a mask")
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + 4 + n)
        mask, data = self.buf[off:off + 4], self.buf[off + 4:off + 4 + n]
        self.buf = self.buf[off + 4 + n:]
        return b0 & 0x0F, bytes(x ^ mask[i % 4] for i, x in enumerate(data))


def frame(op, payload, fin=True):
    """A server frame: unmasked."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def publication(seq):
    data = {"ts": time.monotonic_ns(), "seq": seq, "p": "xxxxxxxx"}
    return json.dumps({"push": {"channel": "bench-0", "pub": {"data": data}}}, separators=(",", ":")).encode()


UPGRADED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


class FakeServer:
    """Accepts connections on a free loopback port and runs HANDLER(server, socket) for each."""

    def __init__(self, handler):
        self.handler, self.errors, self.seen, self.conns = handler, [], [], []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sse = None  # the SSE stream, for the emulation POSTs to answer on
        self.sse_ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(self, c)
        except (EOFError, OSError):  # the client left, or close() ended the case
            pass
        except Exception as e:  # an assertion about what the client sent, or what it sent did not parse
            self.errors.append(repr(e))

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def ws_streamd(srv, c):
    """streamd over WebSocket: connect and subscribe replies, then two publications: one in three
    fragments with a WebSocket ping between them, one in a message after an application ping ({})."""
    line, headers, rest = recv_head(c)
    if not line.startswith("GET /connection/websocket ") or headers.get("upgrade", "").lower() != "websocket":
        raise AssertionError(f"not a WebSocket upgrade: {line} {headers}")
    c.sendall(UPGRADED)
    frames = ClientFrames(c, rest)
    op, cmd = frames.next()
    srv.seen.append(cmd.decode())
    if op != 1 or json.loads(cmd) != {"connect": {"name": "bench"}, "id": 1}:
        raise AssertionError(f"first frame {op} {cmd!r}")
    c.sendall(frame(1, b'{"id":1,"connect":{"client":"c1","version":"0.1.0","ping":25,"pong":true}}'))
    op, cmd = frames.next()
    srv.seen.append(cmd.decode())
    if op != 1 or json.loads(cmd) != {"subscribe": {"channel": "bench-0"}, "id": 2}:
        raise AssertionError(f"second frame {op} {cmd!r}")
    c.sendall(frame(1, b'{"id":2,"subscribe":{}}'))
    pub = publication(0)
    a, b = len(pub) // 3, 2 * len(pub) // 3
    c.sendall(frame(1, pub[:a], fin=False) + frame(9, b"hi") + frame(0, pub[a:b], fin=False))
    time.sleep(0.05)  # the last fragment in another read
    c.sendall(frame(0, pub[b:]))
    op, data = frames.next()
    srv.seen.append((op, data))
    if (op, data) != (0xA, b"hi"):
        raise AssertionError(f"answer to the ping: {op} {data!r}")
    c.sendall(frame(1, b"{}\n" + publication(1)))
    op, data = frames.next()
    srv.seen.append((op, data))
    if (op, data) != (1, b"{}"):
        raise AssertionError(f"answer to the {{}} ping: {op} {data!r}")
    time.sleep(5)


def ws_bytes(payload):
    """A WebSocket server that sends PAYLOAD right after the 101."""

    def handler(srv, c):
        recv_head(c)
        c.sendall(UPGRADED + payload)
        time.sleep(5)

    return handler


def ws_endless(srv, c):
    """A text message that never ends a line: 20 fragments of 1 MiB."""
    recv_head(c)
    c.sendall(UPGRADED)
    c.sendall(frame(1, b"x" * (1 << 20), fin=False))
    for _ in range(20):
        c.sendall(frame(0, b"x" * (1 << 20), fin=False))
    time.sleep(5)


def sse_streamd(srv, c):
    """streamd over SSE: the stream on GET /connection/sse, the subscribe and the pong on POST /emulation."""
    line, headers, rest = recv_head(c)
    method, target, _ = line.split(" ")
    if method == "GET":
        path, _, query = target.partition("?")
        cf = urllib.parse.parse_qs(query).get("cf_connect", [""])[0]
        srv.seen.append(cf)
        if path != "/connection/sse" or json.loads(cf) != {"connect": {"name": "bench"}, "id": 1}:
            raise AssertionError(f"SSE request {target}")
        if "text/event-stream" not in headers.get("accept", ""):
            raise AssertionError(f"SSE Accept {headers.get('accept')}")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        srv.sse = c
        chunk(c, b":\n")
        chunk(c, b'data: {"id":1,"connect":{"client":"c1","session":"s1","node":"n1"}}\n\n')
        srv.sse_ready.set()
        time.sleep(5)
        return
    while True:  # keep-alive emulation POSTs
        body, rest = recv_body(c, headers, rest)
        req = json.loads(body)
        if line.split(" ")[1] != "/emulation" or req["session"] != "s1" or req["node"] != "n1":
            raise AssertionError(f"emulation request {line} {body!r}")
        srv.seen.append(req["data"])
        c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        srv.sse_ready.wait(5)
        cmd = json.loads(req["data"])
        if cmd.get("subscribe"):
            ev = b'data: {"id":2,"subscribe":{}}\n\n' + b"data: " + publication(0) + b"\n\n"
            chunk(srv.sse, ev[:40])  # an event split across chunks and reads
            time.sleep(0.05)
            chunk(srv.sse, ev[40:] + b"data: {}\n\n")
        elif cmd == {}:
            chunk(srv.sse, b"id: 7\nretry: 100\n: comment\ndata: " + publication(1) + b"\r\n\r\n")
        line, headers, rest = recv_head(c)


def chunk(c, data):
    c.sendall(b"%x\r\n%s\r\n" % (len(data), data))


# name: (handler, transport, --count, expected report fields, expected client messages or None)
CASES = [
    ("websocket: fragments, pings, joined replies", ws_streamd, "websocket", 2,
     {"count": 2, "ready": 1, "pings": 2, "pongs": 2, "bad_frames": 0, "closed_by_server": 0, "streams_complete": 1},
     ['{"connect":{"name":"bench"},"id":1}', '{"subscribe":{"channel":"bench-0"},"id":2}', (0xA, b"hi"), (1, b"{}")]),
    ("websocket: Close 3001", ws_bytes(frame(8, struct.pack(">H", 3001) + b"shutdown")), "websocket", 1,
     {"count": 0, "disconnects": 1, "last_disconnect_code": 3001, "closed_by_server": 1, "bad_frames": 0}, None),
    ("websocket: a masked server frame", ws_bytes(b"\x81\x82abcd\x00\x00"), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: reserved bits", ws_bytes(b"\xc1\x02{}"), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: a continuation of nothing", ws_bytes(b"\x00\x02{}"), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: a 128-byte ping", ws_bytes(b"\x89\x7e\x00\x80" + b"x" * 128), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: a fragmented ping", ws_bytes(b"\x09\x00"), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: opcode 3", ws_bytes(b"\x83\x00"), "websocket", 1, {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: a length of 2^63", ws_bytes(b"\x81\x7f\x80" + b"\x00" * 7), "websocket", 1,
     {"bad_frames": 1, "closed_by_server": 1}, None),
    ("websocket: 21 MiB without a newline", ws_endless, "websocket", 1, {"bad_frames": 1, "closed_by_server": 1}, None),
    ("sse: cf_connect, split events, comments, emulation", sse_streamd, "sse", 2,
     {"count": 2, "ready": 1, "pings": 1, "pongs": 1, "bad_frames": 0, "closed_by_server": 0, "streams_complete": 1},
     ['{"connect":{"name":"bench"},"id":1}', '{"subscribe":{"channel":"bench-0"},"id":2}', "{}"]),
]


def run(loadgen, name, handler, transport, count, want, want_seen):
    srv = FakeServer(handler)
    try:
        p = subprocess.run([loadgen, "subscribe", "--port", str(srv.port), "--conns", "1", "--transport", transport,
                            "--count", str(count), "--posters", "1", "--duration", "10", "--quiet", "2"],
                           capture_output=True, text=True, timeout=30)
        end = time.time() + 3  # the fake server may still be reading the client's last message
        while want_seen is not None and len(srv.seen) < len(want_seen) and not srv.errors and time.time() < end:
            time.sleep(0.02)
    finally:
        srv.close()
    problems = list(srv.errors)
    if p.returncode != 0:
        problems.append(f"exit status {p.returncode}: {p.stderr.strip()[-300:]}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    report = json.loads(lines[-1]) if lines else {}
    for k, v in want.items():
        if report.get(k) != v:
            problems.append(f"{k} = {report.get(k)!r}, want {v!r}")
    if want_seen is not None and srv.seen != want_seen:
        problems.append(f"the client sent {srv.seen!r}, want {want_seen!r}")
    if problems:
        problems.append("report: " + json.dumps({k: v for k, v in report.items() if k != "hist"}))
    print(f"{'ok  ' if not problems else 'FAIL'} {name}" + "".join("\n       " + x for x in problems), flush=True)
    return not problems


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: test_loadgen_wire.py LOADGEN")
    results = [run(sys.argv[1], *case) for case in CASES]
    print(f"{sum(results)} of {len(results)} cases passed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
