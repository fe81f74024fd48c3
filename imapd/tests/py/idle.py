"""IDLE sees mail that lda delivers meanwhile.

Usage: idle.py PORT SCRATCH_DIR
Creates SCRATCH_DIR/deliver-now once idling; the Rust side then delivers.
Prints the seconds from that signal to the EXISTS response.
"""
import os
import socket
import sys
import time

port, scratch = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
f.readline()


def command(line):
    tag = line.split(b" ")[0]
    s.sendall(line + b"\r\n")
    lines = []
    while True:
        reply = f.readline()
        lines.append(reply)
        if reply.startswith(tag + b" "):
            assert reply.startswith(tag + b" OK"), reply
            return lines


command(b"a LOGIN alice secret")
selected = command(b"b SELECT INBOX")
assert b"* 1 EXISTS\r\n" in selected, selected
s.sendall(b"c IDLE\r\n")
assert f.readline().startswith(b"+ ")
signal = time.monotonic()
open(os.path.join(scratch, "deliver-now"), "w").close()
seen = []
while True:
    line = f.readline()
    assert line, "connection closed while idling"
    seen.append(line)
    if line == b"* 2 EXISTS\r\n":
        break
delay = time.monotonic() - signal
s.sendall(b"DONE\r\n")
rest = f.readline()
while not rest.startswith(b"c "):
    rest = f.readline()
assert rest.startswith(b"c OK"), rest
command(b"d LOGOUT")
print(f"idle: ok {delay:.3f}")
