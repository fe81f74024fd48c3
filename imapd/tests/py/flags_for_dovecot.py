"""Sets flags and keywords that Dovecot must then read from the mbox.

Usage: flags_for_dovecot.py PORT SCRATCH_DIR set|check
"""
import imaplib
import sys

port, step = int(sys.argv[1]), sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice", "secret")


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


ok(m.select("INBOX"))
if step == "set":
    ok(m.store("1", "+FLAGS", "(\\Seen \\Flagged)"))
    ok(m.store("2", "+FLAGS", "(\\Answered $Junk work)"))
    ok(m.store("3", "+FLAGS", "(\\Deleted)"))
    ok(m.create("Spam"))
    ok(m.copy("1", "Spam"))
else:
    # Dovecot added \Draft to UID 1 and removed \Deleted from UID 3
    data = ok(m.uid("FETCH", "1:*", "(FLAGS)"))
    text = b" ".join(data)
    assert b"1 FETCH (UID 1 FLAGS (\\Seen \\Flagged \\Draft))" in text or b"UID 1 FLAGS (\\Seen \\Flagged \\Draft)" in text, text
    assert b"\\Deleted" not in text, text
m.logout()
print("ok", step)
