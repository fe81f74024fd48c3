"""A scripted day at the site, as real clients make it: mail sent with
smtplib from inside (127.0.0.1) and outside (127.0.0.2 and up), refused
for every cause the site has, and users reading mail over IMAP (imaplib)
and POP3 (poplib) from inside and outside. Prints one JSON object: what
each step got, for the test to check before it reads the report.

    day.py send SMTP_PORT EICAR
    day.py read IMAP_PORT POP3_PORT
"""

import imaplib
import json
import poplib
import smtplib
import socket
import sys

mode = sys.argv[1]
said = {}


def message(subject, body, extra=""):
    return (
        f"From: Sender <sender@example.org>\r\nTo: someone@example.jp\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n"
    ).encode()


def send(source, rcpt, msg, key):
    """One message over a fresh session from `source`; the reply code of
    the step that answered last (250 when queued)."""
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, source_address=(source, 0), timeout=30) as s:
            s.ehlo("client.example.org")
            s.sendmail("sender@example.org", [rcpt], msg)
            said[key] = 250
    except smtplib.SMTPRecipientsRefused as e:
        said[key] = list(e.recipients.values())[0][0]
    except smtplib.SMTPResponseException as e:
        said[key] = e.smtp_code
    except smtplib.SMTPServerDisconnected:
        said[key] = "disconnected"


class FromAddress:
    """imaplib and poplib connect from a chosen local address."""

    source = "127.0.0.1"

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


class Imap(FromAddress, imaplib.IMAP4):
    pass


class Pop3(FromAddress, poplib.POP3):
    pass


def imap(source):
    Imap.source = source
    c = Imap("127.0.0.1", imap_port, timeout=30)
    c.login("alice", "secret")
    typ, data = c.select("INBOX")
    c.logout()
    return int(data[0])


def pop3(source):
    Pop3.source = source
    c = Pop3("127.0.0.1", pop3_port, timeout=30)
    c.user("bob")
    c.pass_("hunter2")
    count, _ = c.stat()
    c.quit()
    return count


if mode == "send":
    smtp_port, eicar = int(sys.argv[2]), sys.argv[3]
    # accepted: three for alice from inside (<=1 KB, <=10 KB, <=100 KB; the
    # last one spam), one for bob from outside (<=10 KB)
    ham = "Hi Alice, the project review moved to Thursday; please bring the quarterly report."
    send("127.0.0.1", "alice@example.jp", message("Project review", ham), "small")
    send("127.0.0.1", "alice@example.jp", message("Budget figures", (ham + "\r\n") * 50), "medium")
    spam = "Buy cheap pills now! Limited offer, click http://cheap-pills.example/buy and get a discount."
    send("127.0.0.1", "alice@example.jp", message("Cheap pills offer", (spam + "\r\n") * 500), "large")
    send("127.0.0.2", "bob@example.jp", message("Lunch", (ham + "\r\n") * 30), "outside")
    # refused, one for each cause
    send("127.0.0.2", "someone@remote.example", message("relay", ham), "relay")
    send("127.0.0.2", "nobody@example.jp", message("unknown", ham), "unknown")
    send("127.0.0.3", "alice@example.jp", message("access", ham), "access")
    send("127.0.0.4", "alice@example.jp", message("listed", ham), "dnsbl")
    send("127.0.0.2", "alice@example.jp", message("forbidden words", ham), "rule")
    virus = (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n",
        f"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename=eicar.com\r\n\r\n{eicar}\r\n--b--",
    )
    send("127.0.0.2", "alice@example.jp", message("attached", virus[1], virus[0]), "virus")
else:
    imap_port, pop3_port = int(sys.argv[2]), int(sys.argv[3])
    said["imap_inside"] = [imap("127.0.0.1"), imap("127.0.0.1")]
    said["imap_outside"] = imap("127.0.0.2")
    said["pop3_outside"] = pop3("127.0.0.5")
print(json.dumps(said))
