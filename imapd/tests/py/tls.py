"""STARTTLS, STLS, imaps and pop3s with certificate verification.

Usage: tls.py IMAP_PORT SCRATCH_DIR POP3_PORT IMAPS_PORT POP3S_PORT CERT
The server runs with plaintext_auth = "never": passwords only over TLS.
"""
import imaplib
import poplib
import ssl
import sys

imap_port, pop3_port, imaps_port, pop3s_port = (int(sys.argv[i]) for i in (1, 3, 4, 5))
ctx = ssl.create_default_context(cafile=sys.argv[6])
ctx.check_hostname = True

# IMAP: LOGINDISABLED in the clear, STARTTLS, then LOGIN works
m = imaplib.IMAP4("localhost", imap_port)
assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities, m.capabilities
try:
    m.login("alice", "secret")
    raise AssertionError("cleartext LOGIN accepted")
except imaplib.IMAP4.error as e:
    assert "PRIVACYREQUIRED" in str(e), e
m.starttls(ssl_context=ctx)
assert "LOGINDISABLED" not in m.capabilities and "STARTTLS" not in m.capabilities, m.capabilities
typ, _ = m.login("alice", "secret")
assert typ == "OK"
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], data
typ, data = m.fetch("1", "(BODY.PEEK[])")
assert b"Subject: hello" in data[0][1], data
m.logout()

# imaps
m = imaplib.IMAP4_SSL("localhost", imaps_port, ssl_context=ctx)
assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities, m.capabilities
m.login("bob", "hunter2")
m.logout()

# POP3: USER refused in the clear, STLS, then it works; pop3s
p = poplib.POP3("localhost", pop3_port)
assert "STLS" in p.capa() and "USER" not in p.capa(), p.capa()
try:
    p.user("alice")
    raise AssertionError("cleartext USER accepted")
except poplib.error_proto:
    pass
p.stls(context=ctx)
p.user("alice")
p.pass_("secret")
assert p.stat()[0] == 1
p.quit()
p = poplib.POP3_SSL("localhost", pop3s_port, context=ctx)
p.user("alice")
p.pass_("secret")
assert p.retr(1)[1][0] == b"Subject: hello"
p.quit()

# a client that does not trust the certificate is refused by its own check
bad = ssl.create_default_context()
try:
    imaplib.IMAP4_SSL("localhost", imaps_port, ssl_context=bad)
    raise AssertionError("an untrusted certificate was accepted")
except ssl.SSLError:
    pass
print("tls: ok")
