#!/usr/bin/env python3
"""What a syncing client pays to catch up after CHANGED flag changes.

Usage: imap-resync.py HOST PORT USER PASS [CHANGED]
A client that knows the mailbox (its HIGHESTMODSEQ) reconnects after
another session changed CHANGED messages' flags (default 10), and asks
what changed: with CONDSTORE (`UID FETCH 1:* (FLAGS) (CHANGEDSINCE h)`,
RFC 7162) and, for comparison, the way a client without it must (`UID
FETCH 1:* (FLAGS)`). Prints bytes received and milliseconds for each.
"""
import imaplib
import socket
import sys
import time

host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
changed = int(sys.argv[5]) if len(sys.argv) > 5 else 10
imaplib._MAXLINE = 10**8

m = imaplib.IMAP4(host, port)
m.login(user, pw)
m._simple_command("ENABLE", "CONDSTORE")
typ, data = m.select("INBOX")
n = int(data[0])
# imaplib keeps a response code's data under its name
highest = int(m.untagged_responses["HIGHESTMODSEQ"][0])
step = max(1, n // changed)
for i in range(changed):
    m.store(str(1 + i * step), "+FLAGS.SILENT", "(\\Flagged)")
m.logout()


def raw(command):
    """Bytes and seconds of one command's whole answer, on a fresh login."""
    s = socket.create_connection((host, port))
    f = s.makefile("rb")
    f.readline()
    s.sendall(f"a LOGIN {user} {pw}\r\nb SELECT INBOX\r\n".encode())
    while not f.readline().startswith(b"b "):
        pass
    start = time.perf_counter()
    s.sendall(b"c " + command.encode() + b"\r\n")
    received = 0
    while True:
        line = f.readline()
        received += len(line)
        if line.startswith(b"c "):
            break
    elapsed = time.perf_counter() - start
    s.sendall(b"d LOGOUT\r\n")
    s.close()
    return received, elapsed


for label, command in [
    (f"resync with CONDSTORE ({changed} of {n} changed)", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"),
    (f"resync without ({n} messages' flags)", "UID FETCH 1:* (FLAGS)"),
]:
    received, elapsed = raw(command)
    print(f"{label:48s} {elapsed * 1000:9.1f} ms {received:10d} bytes")
