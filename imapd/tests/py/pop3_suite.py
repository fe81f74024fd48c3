"""Every POP3 command through Python's poplib against our server.

Usage: pop3_suite.py PORT SCRATCH_DIR
alice's INBOX holds the three messages of tests/imap.rs (PLAIN, JAPANESE,
SHORT); the Rust side checks the file afterwards.
"""
import hashlib
import poplib
import re
import socket
import sys
import time

port = int(sys.argv[1])


def connect():
    return poplib.POP3("127.0.0.1", port, timeout=20)


p = connect()
caps = p.capa()
for cap in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES"):
    assert cap in caps, caps
assert caps["SASL"] == ["PLAIN"], caps
started = time.monotonic()
try:
    p.user("alice")
    p.pass_("wrong")
    raise AssertionError("wrong password accepted")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
assert time.monotonic() - started >= 0.9, "no delay after a failed login"
try:
    p.stat()
    raise AssertionError("STAT before login")
except poplib.error_proto:
    pass
p.quit()

# APOP with the {PLAIN} secret; poplib computes the digest from the greeting
p = connect()
assert re.search(rb"<[^>]+>", p.getwelcome()), p.getwelcome()
p.apop("alice", "secret")
count, octets = p.stat()
assert count == 3, count
listing = p.list()[1]
sizes = [int(line.split()[1]) for line in listing]
assert sum(sizes) == octets, (sizes, octets)
uidls = [line.split()[1] for line in p.uidl()[1]]
assert len(set(uidls)) == 3 and all(re.fullmatch(rb"[0-9a-f]{16}", u) for u in uidls), uidls
assert p.uidl(2).split()[2] == uidls[1]
lines = p.retr(1)[1]
assert lines[0] == b"Subject: hello", lines
assert b"From the start" in lines and b">From quoted" in lines, lines
assert len(b"\r\n".join(lines)) + 2 == sizes[0], (len(b"\r\n".join(lines)), sizes[0])
top = p.top(2, 1)[1]
assert top[-1].startswith(b"\x1b$B") or b"--b1" in top, top  # header + first body line
assert b"MIME-Version: 1.0" in top
p.dele(3)
try:
    p.retr(3)
    raise AssertionError("RETR of a deleted message")
except poplib.error_proto:
    pass
assert p.stat()[0] == 2
p.rset()
assert p.stat()[0] == 3
p.dele(3)
p.noop()
p.quit()

# AUTH PLAIN (SASL), with the SHA512-CRYPT user
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
assert f.readline().startswith(b"+OK")
s.sendall(b"AUTH PLAIN\r\n")
assert f.readline().startswith(b"+ ")
s.sendall(b"AGJvYgBodW50ZXIy\r\n")  # \0bob\0hunter2
reply = f.readline()
assert reply.startswith(b"+OK"), reply
s.sendall(b"QUIT\r\n")
assert f.readline().startswith(b"+OK")
s.close()

# after QUIT: message 3 is gone, message 1 is \Seen (checked in Rust)
p = connect()
p.user("alice")
p.pass_("secret")
assert p.stat()[0] == 2
p.quit()
print("pop3 suite: ok")
