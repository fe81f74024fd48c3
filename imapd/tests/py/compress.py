"""COMPRESS=DEFLATE (RFC 4978) through imaplib: the client side of the
compression is Python's zlib (raw deflate, sync-flushed per command), so
every imaplib command after COMPRESS runs over it unchanged.

Usage: compress.py PORT SCRATCH_DIR
"""
import imaplib
import sys
import zlib

port = int(sys.argv[1])
imaplib.Commands["COMPRESS"] = ("NONAUTH", "AUTH", "SELECTED")


def status(m, *command):
    """The tagged status of a command, BAD included (imaplib raises it)."""
    try:
        typ, data = m._simple_command(*command)
        return typ, data[0]
    except imaplib.IMAP4.error as e:
        return "BAD", str(e).encode()


class Compressing(imaplib.IMAP4):
    """imaplib with COMPRESS: after `compress()`, what it writes is
    deflated and what it reads is inflated."""

    compressed = False
    wire_in = 0  # compressed bytes received
    plain_in = 0  # what they inflated to

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        assert typ == "OK", (typ, data)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.inflated = b""
        self.compressed = True

    def send(self, data):
        if self.compressed:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed")
        self.wire_in += len(chunk)
        plain = self.inflate.decompress(chunk)
        self.plain_in += len(plain)
        self.inflated += plain

    def read(self, size):
        if not self.compressed:
            return super().read(size)
        while len(self.inflated) < size:
            self._more()
        data, self.inflated = self.inflated[:size], self.inflated[size:]
        return data

    def readline(self):
        if not self.compressed:
            return super().readline()
        while b"\n" not in self.inflated:
            self._more()
        end = self.inflated.index(b"\n") + 1
        line, self.inflated = self.inflated[:end], self.inflated[end:]
        return line


def caps(m):
    m.untagged_responses.pop("CAPABILITY", None)  # the one LOGIN's OK carried
    typ, data = m.capability()
    assert typ == "OK", (typ, data)
    return data[0].split()


def fetch_all(m):
    typ, data = m.select("INBOX", readonly=True)  # \Recent stays for the next
    assert typ == "OK", (typ, data)
    typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[] BODYSTRUCTURE)")
    assert typ == "OK", (typ, data)
    return data


plain = imaplib.IMAP4("127.0.0.1", port, timeout=60)
assert b"COMPRESS=DEFLATE" not in caps(plain), "offered before login"
typ, text = status(plain, "COMPRESS", "DEFLATE")
assert typ == "BAD", ("COMPRESS before login", typ, text)
plain.login("alice", "secret")
assert b"COMPRESS=DEFLATE" in caps(plain)
expected = fetch_all(plain)
plain.logout()

m = Compressing("127.0.0.1", port, timeout=60)  # a hang fails rather than waits
m.login("alice", "secret")
typ, text = status(m, "COMPRESS", "LZMA")
assert typ == "BAD", ("an unknown algorithm", typ, text)
m.compress()
assert b"COMPRESS=DEFLATE" not in caps(m), "still offered under compression"
typ, text = status(m, "COMPRESS", "DEFLATE")
assert typ == "NO" and b"[COMPRESSIONACTIVE]" in text, (typ, text)
typ, text = status(m, "STARTTLS")
assert typ == "BAD", ("STARTTLS under COMPRESS", typ, text)
got = fetch_all(m)
assert got == expected, ("the same answers compressed", got, expected)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)

# a large message both ways: APPEND's literal and FETCH's answer
body = b"".join(b"line %05d of a long and repetitive message\r\n" % i for i in range(20000))
message = b"Subject: long\r\nFrom: a@example.org\r\n\r\n" + body
typ, data = m.append("INBOX", None, None, message)
assert typ == "OK", (typ, data)
wire_before, plain_before = m.wire_in, m.plain_in
typ, data = m.fetch("*", "(BODY.PEEK[])")
assert typ == "OK" and data[0][1] == message, (typ, len(data[0][1]))
wire, inflated = m.wire_in - wire_before, m.plain_in - plain_before
assert inflated > len(message) and wire * 5 < inflated, (wire, inflated)
print(f"compress: FETCH of {len(message)} bytes: {wire} bytes on the wire")
m.logout()
print("compress: ok")
