"""Hostile input over raw sockets; the server must stay up for others.

Usage: hostile.py PORT SCRATCH_DIR
"""
import os
import random
import socket
import sys
import time
import imaplib

port = int(sys.argv[1])


def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    greeting = s.recv(4096)
    assert greeting.startswith(b"* OK"), greeting
    return s


def read_until(s, marker, limit=50_000_000):
    data = b""
    while marker not in data:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


def login(s):
    s.sendall(b"l LOGIN alice secret\r\n")
    assert b"l OK" in read_until(s, b"l "), "login failed"


# 1. random bytes: answered or disconnected, never a crash
random.seed(7)
for _ in range(5):
    s = conn()
    try:
        s.sendall(bytes(random.getrandbits(8) for _ in range(20000)) + b"\r\n")
        s.settimeout(2)
        try:
            while s.recv(65536):
                pass
        except socket.timeout:
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()

# 2. a huge synchronizing literal is refused without waiting for its data
s = conn()
login(s)
s.sendall(b"a APPEND INBOX {99999999999}\r\n")
reply = read_until(s, b"\r\n")
assert reply.startswith(b"a NO [TOOBIG]"), reply
s.sendall(b"b NOOP\r\n")
assert b"b OK" in read_until(s, b"b ")
# a huge non-synchronizing one closes the connection
s.sendall(b"c APPEND INBOX {99999999999+}\r\n")
assert b"* BYE" in read_until(s, b"\r\n")
s.close()

# 3. an unterminated literal, then the client goes away
s = conn()
login(s)
s.sendall(b"a APPEND INBOX {1000}\r\n")
assert read_until(s, b"\r\n").startswith(b"+ ")
s.sendall(b"only a little")
s.close()

# 4. an overlong line
s = conn()
s.sendall(b"a NOOP " + b"x" * 200_000 + b"\r\n")
assert b"BYE" in read_until(s, b"BYE"), "no BYE on an overlong line"
s.close()

# 5. deeply nested SEARCH keys and parentheses
s = conn()
login(s)
s.sendall(b"a SELECT INBOX\r\n")
read_until(s, b"a OK")
for depth in (100, 5000):
    s.sendall(b"n SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n")
    reply = read_until(s, b"n ")
    assert b"n OK" in reply or b"n BAD" in reply or b"n NO" in reply, reply[-200:]
    s.sendall(b"m SEARCH " + b"NOT " * depth + b"ALL\r\n")
    reply = read_until(s, b"m ")
    assert b"m OK" in reply or b"m BAD" in reply or b"m NO" in reply, reply[-200:]
s.close()

# 6. 10,000 pipelined commands in one write
s = conn()
login(s)
s.sendall(b"".join(b"p%d NOOP\r\n" % i for i in range(10000)))
reply = read_until(s, b"p9999 OK")
assert reply.count(b" OK ") >= 10000, reply.count(b" OK ")
s.close()

# 7. a command pipelined behind STARTTLS (plaintext injection) is not
# carried into the TLS session: the server hangs up instead
s = conn()
s.sendall(b"a STARTTLS\r\nb LOGIN alice secret\r\n")
reply = read_until(s, b"a OK")
assert b"a OK" in reply, reply
s.settimeout(5)
assert s.recv(100) == b"", "the connection stayed open"
s.close()

# others are unaffected: a normal session works
m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice", "secret")
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and b"Subject" in data[0][1], data
m.logout()
print("hostile: ok")
