"""Creates mailboxes: create.py PORT SCRATCH_DIR USER PASSWORD NAME…"""
import imaplib
import sys

m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[3], sys.argv[4])
for name in sys.argv[5:]:
    typ, data = m.create(name)
    assert typ == "OK", data
m.logout()
