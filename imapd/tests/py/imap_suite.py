"""Every IMAP4rev1 command through Python's imaplib against our imapd.

Usage: imap_suite.py PORT SCRATCH_DIR
The Rust test delivered three messages to alice's INBOX first (see
tests/imap.rs) and checks the files afterwards.
"""
import imaplib
import re
import sys
import time

port = int(sys.argv[1])


def connect():
    return imaplib.IMAP4("127.0.0.1", port)


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def no_or_bad(fn, *args):
    """A refusal: NO, or BAD (which imaplib raises)."""
    try:
        typ, data = fn(*args)
    except imaplib.IMAP4.error as e:
        return "BAD " + str(e)
    return typ


def no(fn, *args):
    try:
        typ, data = fn(*args)
    except imaplib.IMAP4.error as e:
        return str(e)
    assert typ == "NO", (typ, data)
    return data


def fetch_one(m, seq, items):
    """The raw response parts of FETCH seq items as one bytes string."""
    data = ok(m.fetch(seq, items))
    out = b""
    for part in data:
        if isinstance(part, tuple):
            out += part[0] + part[1]
        else:
            out += part
    return out


# --- not authenticated ---
m = connect()
caps = m.capabilities
for cap in ("IMAP4REV1", "IDLE", "MOVE", "UIDPLUS", "NAMESPACE", "AUTH=PLAIN", "LITERAL+", "SPECIAL-USE"):
    assert cap in caps, (cap, caps)
ok(m.noop())
started = time.monotonic()
try:
    m.login("alice", "wrong")
    raise AssertionError("wrong password accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
assert time.monotonic() - started >= 0.9, "no delay after a failed login"
try:
    m.select("INBOX")
    raise AssertionError("SELECT before login accepted")
except imaplib.IMAP4.error:
    pass
m.logout()

# SHA512-CRYPT user, AUTHENTICATE PLAIN
m = connect()
ok(m.authenticate("PLAIN", lambda _: b"\0bob\0hunter2"))
assert m.logout()[0] == "BYE"

m = connect()
ok(m.login("alice", "secret"))
m._get_capabilities()
assert "AUTH=PLAIN" not in m.capabilities

# --- mailboxes ---
data = ok(m.list())
assert any(b'"INBOX"' in line for line in data), data
for name in ("Spam", "Trash", "&j,dg0TDhMPww6w-", "Work/2026"):
    ok(m.create(name))
assert "ALREADYEXISTS" in str(no(m.create, "Spam"))
for bad in ("../evil", "/etc/passwd", "a/../../b", ".hidden", "INBOX"):
    no(m.create, bad)
listing = b"\n".join(ok(m.list()))
assert b'(\\HasNoChildren \\Junk) "/" "Spam"' in listing, listing
assert b'(\\Noselect \\HasChildren) "/" "Work"' in listing, listing
assert b'"Work/2026"' in listing and b'"&j,dg0TDhMPww6w-"' in listing, listing
only = ok(m.list('""', "W%"))
assert len(only) == 1 and b'"Work"' in only[0], only
assert ok(m.list('""', '""')) == [b'(\\Noselect) "/" ""']
# SPECIAL-USE's selection option (RFC 6154) and LIST-STATUS (RFC 5819)
typ, _ = m._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
special = m.untagged_responses.pop("LIST")
assert typ == "OK" and len(special) == 2, special
assert any(b"\\Junk" in l for l in special) and any(b"\\Trash" in l for l in special), special
typ, _ = m._simple_command("LIST", '""', '"Spam"', "RETURN", "(STATUS (MESSAGES))")
assert typ == "OK" and m.untagged_responses.pop("STATUS") == [b'"Spam" (MESSAGES 0)'], m.untagged_responses
# CREATE-SPECIAL-USE: the configured folder may be created with its use,
# another name is refused with USEATTR
typ, _ = m._simple_command("CREATE", "Sent", "(USE (\\Sent))")
assert typ == "OK", typ
typ, data = m._simple_command("CREATE", "Junk", "(USE (\\Junk))")
assert typ == "NO" and b"[USEATTR]" in data[0] and b"Spam" in data[0], (typ, data)
ok(m.delete("Sent"))

# UTF8=ACCEPT (RFC 6855): names in UTF-8 both ways for a client that
# enables it; the same folder in modified UTF-7 for one that does not
u = connect()
ok(u.login("alice", "secret"))
typ, data = u.enable("UTF8=ACCEPT")
assert typ == "OK" and u.untagged_responses.pop("ENABLED") == [b"UTF8=ACCEPT"], u.untagged_responses
ok(u.create('"日本語/会議"'))
listing = b"\n".join(ok(u.list('""', '"日本語/*"')))
assert '"/" "日本語/会議"'.encode() in listing, listing
assert ok(u.status('"日本語/会議"', "(MESSAGES)"))[0] == '"日本語/会議" (MESSAGES 0)'.encode()
ok(u.select('"日本語/会議"'))
u.logout()
listing = b"\n".join(ok(m.list('""', '"&ZeVnLIqe-/*"')))
assert b'"/" "&ZeVnLIqe-/&TxqLcA-"' in listing, listing
ok(m.delete('"&ZeVnLIqe-/&TxqLcA-"'))
ok(m.delete('"&ZeVnLIqe-"'))

# --- SELECT and FETCH ---
data = ok(m.select("INBOX"))
assert data == [b"3"], data
assert m.untagged_responses.get("RECENT") == [b"3"], m.untagged_responses
validity = m.untagged_responses["UIDVALIDITY"][0]
resp = fetch_one(m, "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
uids = re.findall(rb"UID (\d+)", resp)
assert uids == [b"1", b"2", b"3"], resp
assert b"\\Recent" in resp and b"\\Seen" not in resp, resp

whole = ok(m.fetch("1", "(BODY.PEEK[] RFC822.SIZE)"))[0]
body = whole[1]
size = int(re.search(rb"RFC822.SIZE (\d+)", whole[0] + (ok(m.fetch("1", "RFC822.SIZE"))[0])).group(1))
assert body.startswith(b"Subject: hello\r\n"), body
assert b"\r\nFrom the start\r\n>From quoted\r\n" in body, body
assert b"X-UID" not in body and b"Status:" not in body, body
assert len(body) == size, (len(body), size)
assert fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])").count(b"Subject: hello\r\n\r\n") == 1
partial = ok(m.fetch("1", "(BODY.PEEK[]<0.7>)"))[0]
assert partial[1] == b"Subject" and b"<0>" in partial[0], partial
assert b"\\Seen" not in fetch_one(m, "1", "FLAGS"), "PEEK set \\Seen"

two = fetch_one(m, "2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODYSTRUCTURE ENVELOPE)")
assert b"\x1b$B" in two, two  # the ISO-2022-JP text part, raw
assert b'Content-Disposition: attachment; filename="a.pdf"' in two, two
assert b'("TEXT" "PLAIN" ("CHARSET" "ISO-2022-JP")' in two, two
assert b'"MIXED" ("BOUNDARY" "b1")' in two, two
assert b'"=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?="' in two, two  # ENVELOPE subject, undecoded
assert b'(("Dave" NIL "dave" "example.net"))' in two, two
header = fetch_one(m, "3", "(RFC822.HEADER)")
assert b"Subject: third\r\n\r\n" in header, header

# --- SEARCH ---
assert ok(m.search(None, "SUBJECT", "hello")) == [b"1"]
assert ok(m.search(None, "OR", "FROM", "carol", "SUBJECT", "third")) == [b"1 3"]
assert ok(m.search(None, "UNSEEN")) == [b"1 2 3"]
r = ok(m.search(None, "SENTON", "1-Jan-2002")); assert r == [b"1"], r
assert ok(m.search(None, "NOT", "SMALLER", "300")) == [b"2"]
assert ok(m.uid("SEARCH", "UID", "2:*")) == [b"2 3"]
m.literal = "日本語".encode()
assert ok(m.search("UTF-8", "SUBJECT")) == [b"2"]
m.literal = "こんにちは".encode("iso-2022-jp")
assert ok(m.search("ISO-2022-JP", "BODY")) == [b"2"]
m.literal = "世界".encode()
assert ok(m.search("UTF-8", "TEXT")) == [b"2"]
m.literal = "世界".encode("shift_jis")
assert ok(m.search("SHIFT_JIS", "BODY")) == [b"2"]
m.literal = "こんにちは".encode("euc_jp")
assert ok(m.search("EUC-JP", "TEXT")) == [b"2"]
assert "BADCHARSET" in str(no(m.search, "X-NO-SUCH-CHARSET", "ALL"))

# --- SORT, THREAD, ESEARCH (RFC 5256, 4731) ---
caps = m.capabilities
for cap in ("SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "ESEARCH"):
    assert cap in caps, caps
# (delivered within a second: equal arrival times keep their order)
assert ok(m.sort("(ARRIVAL)", "UTF-8", "ALL")) == [b"1 2 3"]
assert ok(m.sort("(REVERSE SIZE)", "UTF-8", "ALL"))[0].split()[0] == b"2"
m.literal = "日本語".encode()
assert ok(m.sort("(SUBJECT)", "UTF-8", "SUBJECT")) == [b"2"]
threads = ok(m.thread("REFERENCES", "UTF-8", "ALL"))[0]
assert threads.count(b"(") == 3 and all(n in threads for n in (b"1", b"2", b"3")), threads
assert ok(m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "UID", "2:*"))[0] in (b"(2)(3)", b"(3)(2)")
typ, data = m._simple_command("SEARCH", "RETURN", "(MIN COUNT)", "UNSEEN")
assert typ == "OK", typ
esearch = m.untagged_responses.pop("ESEARCH")
assert esearch[0].endswith(b"MIN 1 COUNT 3"), esearch
assert "BAD" in str(no_or_bad(m._simple_command, "SORT", "(COLOUR)", "UTF-8", "ALL"))

# --- CONDSTORE (RFC 7162), in a session of its own (once on, every
# STORE answers with MODSEQ, even .SILENT) ---
for cap in ("CONDSTORE", "QRESYNC"):
    assert cap in caps, caps
c = connect()
ok(c.login("alice", "secret"))
typ, _ = c._simple_command("ENABLE", "CONDSTORE")
assert typ == "OK" and c.untagged_responses.pop("ENABLED") == [b"CONDSTORE"], typ
ok(c.select("INBOX"))
highest = int(c.untagged_responses["HIGHESTMODSEQ"][0])
assert ok(c.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % highest)) == [None]
ok(m.store("2", "+FLAGS", "(\\Flagged)"))
changed = ok(c.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % highest))
# (the change is news to this session too: its unsolicited FETCH, then
# the answer)
assert changed and all(x.startswith(b"2 (") and b"MODSEQ (" in x for x in changed), changed
ok(m.store("2", "-FLAGS", "(\\Flagged)"))
c.logout()
nested = "NOT " * 200 + "ALL"
try:
    typ, _ = m._simple_command("SEARCH", nested)
    assert typ == "NO", typ
except imaplib.IMAP4.error as e:
    assert "BAD" in str(e), e

# --- STORE, \Seen by FETCH, EXPUNGE ---
resp = b" ".join(ok(m.store("1", "+FLAGS", "(\\Flagged)")))
assert b"\\Flagged" in resp, resp
fetched = fetch_one(m, "1", "(BODY[TEXT])")
assert b"\\Seen" in fetched, fetched  # BODY[] without PEEK reports the new flags
assert ok(m.store("3", "+FLAGS.SILENT", "(\\Deleted)")) == [None]
assert ok(m.search(None, "DELETED")) == [b"3"]
# UID EXPUNGE (UIDPLUS) removes only the named \Deleted messages
ok(m.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
typ, data = m.uid("EXPUNGE", "3")
assert typ == "OK", (typ, data)
assert ok(m.search(None, "DELETED")) == [b"2"]
ok(m.store("2", "-FLAGS.SILENT", "(\\Deleted)"))
assert ok(m.search(None, "ALL")) == [b"1 2"]
assert ok(m.search(None, "ALL")) == [b"1 2"]

# --- APPEND, STATUS, COPY, MOVE ---
msg = b"From: eve@example.com\r\nSubject: appended\r\n\r\nnew body\r\n"
typ, data = m.append("Work/2026", "(\\Seen)", None, msg)
assert typ == "OK" and b"APPENDUID" in data[0], data
assert "TRYCREATE" in str(no(m.append, "Nowhere", None, None, msg))
status = ok(m.status("Work/2026", "(MESSAGES UIDNEXT UNSEEN UIDVALIDITY)"))[0]
assert b"MESSAGES 1" in status and b"UIDNEXT 2" in status and b"UNSEEN 0" in status, status
typ, data = m.copy("1", "Trash")
assert typ == "OK" and b"COPYUID" in data[0], data
typ, data = m.uid("MOVE", "2", "&j,dg0TDhMPww6w-")
assert typ == "OK", (typ, data)
assert ok(m.search(None, "ALL")) == [b"1"]
status = ok(m.status("&j,dg0TDhMPww6w-", "(MESSAGES)"))[0]
assert b"MESSAGES 1" in status, status

# --- RENAME, DELETE, SUBSCRIBE ---
ok(m.rename("Work/2026", "Archive"))
# renaming INBOX moves its mail and leaves it empty (RFC 3501 6.3.5)
ok(m.unselect())
ok(m.rename("INBOX", "Old"))
assert b"MESSAGES 1" in ok(m.status("Old", "(MESSAGES)"))[0]
assert b"MESSAGES 0" in ok(m.status("INBOX", "(MESSAGES)"))[0]
ok(m.select("Old"))
ok(m.copy("1", "INBOX"))
ok(m.select("INBOX"))
ok(m.delete("Trash"))
listing = b"\n".join(ok(m.list()))
assert b'"Archive"' in listing and b'"Trash"' not in listing and b'"Work/2026"' not in listing, listing
ok(m.subscribe("Archive"))
assert ok(m.lsub()) == [b'() "/" "Archive"']
ok(m.unsubscribe("Archive"))
assert ok(m.lsub()) == [None]

# --- extensions ---
ns = ok(m.namespace())
assert ns == [b'(("" "/")) NIL NIL'], ns
ok(m.xatom("ID", '("name" "imaplib")'))
ok(m.noop())
ok(m.check())
ok(m.unselect())
ok(m.select("INBOX", readonly=True))
no(m.store, "1", "+FLAGS", "(\\Answered)")
ok(m.close())
ok(m.select("Archive"))
ok(m.close())
m.logout()
print("imap suite: ok")
