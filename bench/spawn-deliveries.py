#!/usr/bin/env python3
"""Deliver messages by running one fresh process per message, as an MTA does.

spawn-deliveries.py --workers N LIST -- COMMAND ARG...

LIST holds one message file per line; each process gets one file on stdin.
N workers run side by side (each one process at a time). Prints
"<messages> messages, <workers> workers, <seconds> s, <msg/s> msg/s, <failures> failed".
posix_spawn keeps the driver's own cost per message well under a millisecond,
the same for every tool measured.
"""
import os, sys, threading, time

def main():
    args = sys.argv[1:]
    workers = 1
    if args[:1] == ["--workers"]:
        workers = int(args[1]); args = args[2:]
    listfile, sep, command = args[0], args[1], args[2:]
    assert sep == "--" and command
    files = [l.strip() for l in open(listfile) if l.strip()]
    failures = [0]
    lock = threading.Lock()
    def run(chunk):
        for f in chunk:
            fd = os.open(f, os.O_RDONLY)
            null = os.open(os.devnull, os.O_WRONLY)
            pid = os.posix_spawnp(command[0], command, os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
            os.close(fd); os.close(null)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                with lock:
                    failures[0] += 1
    chunks = [files[i::workers] for i in range(workers)]
    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads: t.start()
    for t in threads: t.join()
    dt = time.monotonic() - t0
    print(f"{len(files)} messages, {workers} workers, {dt:.2f} s, {len(files)/dt:.0f} msg/s, {failures[0]} failed")

main()
