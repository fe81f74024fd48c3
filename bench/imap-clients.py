#!/usr/bin/env python3
"""N concurrent IMAP clients issuing a mix of commands for D seconds.

Usage: imap-clients.py HOST PORT USER_PREFIX PASS CLIENTS SECONDS
Client i logs in as USER_PREFIX<i> (1-based), selects INBOX and loops over:
FETCH n (FLAGS), FETCH n (BODY.PEEK[]), UID FETCH (ENVELOPE) of 10,
SEARCH UNSEEN, STORE n +FLAGS (\\Seen), STATUS INBOX, NOOP.
Prints commands/s over all clients and the number of failed commands.
Each client is its own process (threads would share one GIL and measure
Python rather than the server).
"""
import imaplib
import multiprocessing
import random
import sys
import time

host, port, prefix, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
clients, seconds = int(sys.argv[5]), float(sys.argv[6])
imaplib._MAXLINE = 10**8


def client(i, ready, go, result):
    rnd = random.Random(i)
    m = imaplib.IMAP4(host, port)
    m.login(f"{prefix}{i + 1}", pw)
    n = int(m.select("INBOX")[1][0])
    ready.release()
    go.wait()
    count = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        k = rnd.randrange(1, n + 1)
        choice = rnd.randrange(7)
        try:
            if choice == 0:
                typ, _ = m.fetch(str(k), "(FLAGS)")
            elif choice == 1:
                typ, _ = m.fetch(str(k), "(BODY.PEEK[])")
            elif choice == 2:
                typ, _ = m.uid("FETCH", f"{k}:{k + 9}", "(ENVELOPE)")
            elif choice == 3:
                typ, _ = m.search(None, "UNSEEN")
            elif choice == 4:
                typ, _ = m.store(str(k), "+FLAGS", "(\\Seen)")
            elif choice == 5:
                typ, _ = m.status("INBOX", "(MESSAGES UNSEEN)")
            else:
                typ, _ = m.noop()
            if typ != "OK":
                errors += 1
        except imaplib.IMAP4.error:
            errors += 1
        count += 1
    m.logout()
    result.put((count, errors))


if __name__ == "__main__":
    ready, go, result = multiprocessing.Semaphore(0), multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(i, ready, go, result)) for i in range(clients)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    began = time.monotonic()
    go.set()
    totals = [result.get() for _ in procs]
    elapsed = time.monotonic() - began
    for p in procs:
        p.join()
    commands = sum(c for c, _ in totals)
    errors = sum(e for _, e in totals)
    print(f"{clients} clients, {elapsed:.1f} s: {commands} commands, {commands / elapsed:.0f} commands/s, {errors} errors")
