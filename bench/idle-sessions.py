#!/usr/bin/env python3
"""Opens N SMTP sessions to HOST:PORT, reads each greeting, says EHLO,
reads the reply, and holds them all open until stdin closes; prints
"held N" (or how many it got) once they are all open.

Usage: idle-sessions.py HOST PORT N
"""
import resource
import selectors
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))

def reply(f):
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line

held = []
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=30)
        f = s.makefile("rb")
        if not reply(f).startswith(b"220"):
            break
        s.sendall(b"EHLO idle.example.org\r\n")
        if not reply(f).startswith(b"250"):
            break
        held.append((s, f))
    except OSError as e:
        print(f"session {i}: {e}", file=sys.stderr)
        break
print(f"held {len(held)}", flush=True)
sys.stdin.read()
