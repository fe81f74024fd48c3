"""Moves that teach alice's filter; the Rust side checks her token DB.

Usage: training.py PORT SCRATCH_DIR STEP
Each STEP is one user action; the test waits for the DB after each.
"""
import imaplib
import sys

port, step = int(sys.argv[1]), sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
if step.startswith("bob-"):
    m.login("bob", "hunter2")
    m.create("Spam/")  # a directory: mbox folders can't also hold children
    m.create("Spam/old")
else:
    m.login("alice", "secret")
    m.create("Spam")
    m.create("Trash")


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def flags(box, seq):
    ok(m.select(box))
    return ok(m.fetch(seq, "FLAGS"))[0]


if step == "move-to-spam":
    ok(m.select("INBOX"))
    ok(m.uid("MOVE", "1", "Spam"))
    assert b"$Junk" in flags("Spam", "1"), flags("Spam", "1")
elif step == "move-back":
    ok(m.select("Spam"))
    ok(m.uid("MOVE", "1", "INBOX"))
    got = flags("INBOX", "*")
    assert b"$NotJunk" in got and b"$Junk" not in got, got
elif step == "copy-to-spam-then-trash":
    ok(m.select("INBOX"))
    ok(m.copy("1", "Spam"))
    ok(m.select("Spam"))
    ok(m.copy("1", "Trash"))  # Trash never trains
elif step == "bob-copy-to-spam-sub":
    ok(m.select("INBOX"))
    ok(m.copy("1", "Spam/old"))  # a folder under Spam counts as Spam
elif step == "append-to-spam":
    # mbsync's move: APPEND to Spam, then \Deleted + EXPUNGE in INBOX
    ok(m.select("INBOX"))
    data = ok(m.fetch("2", "(BODY.PEEK[])"))
    ok(m.append("Spam", None, None, data[0][1]))
    ok(m.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(m.expunge())
elif step == "flag-junk":
    ok(m.select("INBOX"))
    resp = ok(m.store("1", "+FLAGS", "($Junk)"))
    assert b"$Junk" in resp[0], resp
elif step == "flag-not-junk":
    ok(m.select("INBOX"))
    resp = ok(m.store("1", "+FLAGS", "($NotJunk)"))
    assert b"$NotJunk" in resp[0] and b"$Junk " not in resp[0], resp
else:
    raise SystemExit(f"unknown step {step}")
m.logout()
print("ok", step)
