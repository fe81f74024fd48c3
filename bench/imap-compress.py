#!/usr/bin/env python3
"""COMPRESS=DEFLATE (RFC 4978) against a server: the same commands with and
without compression, the bytes that crossed the wire and the time.

Usage: imap-compress.py HOST PORT USER PASSWORD

Measures FETCH 1:* (BODY.PEEK[]) of the INBOX (bulk: what compression
saves) and 200 single-message FETCH (FLAGS) round trips (what its flush
per response costs). The client side of the compression is Python's
zlib, raw deflate, sync-flushed per command, as mbsync and mutt do.
"""
import re
import socket
import sys
import time
import zlib

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Session:
    def __init__(self):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0  # what is read of buf
        self.wire = 0  # bytes received from the socket
        self.inflate = None
        self.deflate = None
        self.tag = 0
        self.line()  # greeting

    def more(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError("server closed the connection")
        self.wire += len(chunk)
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += self.inflate.decompress(chunk) if self.inflate else chunk

    def line(self):
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self.more()
        line = bytes(self.buf[self.pos : end + 2])
        self.pos = end + 2
        return line

    def take(self, n):
        while len(self.buf) - self.pos < n:
            self.more()
        self.pos += n

    def send(self, data):
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def run(self, command):
        """Sends a command; returns its tagged line (literals skipped whole)."""
        self.tag += 1
        tag = b"c%d " % self.tag
        self.send(tag + command.encode() + b"\r\n")
        while True:
            line = self.line()
            while (m := LITERAL.search(line)):
                self.take(int(m.group(1)))
                line = self.line()
            if line.startswith(tag):
                assert line[len(tag):].startswith(b"OK"), line
                return line

    def compress(self):
        self.run("COMPRESS DEFLATE")
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)


def measure(compressed):
    s = Session()
    s.run(f"LOGIN {user} {password}")
    if compressed:
        s.compress()
    s.run("EXAMINE INBOX")
    before, start = s.wire, time.perf_counter()
    s.run("FETCH 1:* (BODY.PEEK[])")
    bulk = (time.perf_counter() - start, s.wire - before)
    before, start = s.wire, time.perf_counter()
    for i in range(200):
        s.run(f"FETCH {i % 100 + 1} (FLAGS)")
    trips = (time.perf_counter() - start, s.wire - before)
    s.run("LOGOUT")
    return bulk, trips


for compressed in (False, True):
    (bulk_t, bulk_b), (trip_t, trip_b) = measure(compressed)
    name = "COMPRESS=DEFLATE" if compressed else "plain"
    print(f"{name:17} FETCH 1:* (BODY.PEEK[])  {bulk_t * 1000:8.1f} ms {bulk_b:>11,} bytes on the wire")
    print(f"{name:17} 200 x FETCH n (FLAGS)    {trip_t * 1000:8.1f} ms {trip_b:>11,} bytes on the wire")
