"""CATENATE (RFC 4469) and IMAP4rev2 (RFC 9051) through imaplib: a message
put together from parts of another (imaplib sends one literal only at a
command's end, so the parts here are URLs; the TEXT parts are
imap.rs's test), a URL that names nothing, then a session that enables
IMAP4rev2 and works as it must then (no \\Recent, ESEARCH).

Usage: catenate_rev2.py PORT SCRATCH_DIR
"""
import imaplib
import sys

port = int(sys.argv[1])
m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
m.login("alice", "secret")
typ, data = m.capability()
caps = data[0].split()
assert b"CATENATE" in caps and b"IMAP4rev2" in caps, caps
m.create("Drafts")
original = b"Subject: part one\r\nFrom: a@example.org\r\n\r\nfirst body\r\n"
typ, data = m.append("INBOX", None, None, original)
assert typ == "OK", (typ, data)
typ, data = m.select("INBOX")
validity = m.response("UIDVALIDITY")[1][0].decode()
urls = f'(URL "/INBOX;UIDVALIDITY={validity}/;UID=1/;SECTION=HEADER" URL ";UID=1/;SECTION=TEXT" URL ";UID=1/;SECTION=TEXT")'
typ, data = m._simple_command("APPEND", "Drafts", "(\\Seen)", "CATENATE", urls)
assert typ == "OK" and b"APPENDUID" in data[0], (typ, data)
typ, data = m._simple_command("APPEND", "Drafts", "CATENATE", '(URL "/INBOX/;UID=9")')
assert typ == "NO" and b"[BADURL /INBOX/;UID=9]" in data[0], (typ, data)
typ, data = m.select("Drafts")
assert data == [b"1"], data
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
expected = b"Subject: part one\r\nFrom: a@example.org\r\n\r\nfirst body\r\nfirst body\r\n"
assert data[0][1] == expected and b"\\Seen" in data[0][0], data

# IMAP4rev2
m.logout()
m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
m.login("alice", "secret")
typ, data = m.enable("IMAP4rev2")
assert typ == "OK" and m.untagged_responses.pop("ENABLED") == [b"IMAP4rev2"], (typ, data)
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
assert "RECENT" not in m.untagged_responses, m.untagged_responses
assert "LIST" in m.untagged_responses, m.untagged_responses
typ, data = m.fetch("1", "(FLAGS)")
assert b"\\Recent" not in data[0], data
typ, data = m.search(None, "SUBJECT", '"part one"')
assert typ == "OK", (typ, data)
esearch = m.untagged_responses.pop("ESEARCH")
assert esearch[0].endswith(b" ALL 1"), esearch
assert "SEARCH" not in m.untagged_responses
m.logout()
print("catenate_rev2: ok")
