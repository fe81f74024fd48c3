"""The clients of the whole-site test (site/tests/up.rs), one step per
call, each printing a JSON object of what it got:

    up.py send PORT SOURCE TO SUBJECT BODY    one message over SMTP
    up.py move IMAP_PORT PASSWORD             INBOX's messages into Spam (UID MOVE)
    up.py count IMAP_PORT PASSWORD            how many messages INBOX and Spam hold
    up.py pop3 POP3_PORT PASSWORD             INBOX over POP3: the subjects
    up.py load PORT COUNT                     COUNT messages, one session each, until one fails
"""

import imaplib
import json
import poplib
import smtplib
import sys


def send(port, source, to, subject, body):
    msg = f"From: Sender <sender@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    try:
        with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=30) as s:
            s.ehlo("client.example.org")
            s.sendmail("sender@example.org", [to], msg.encode())
            return 250
    except smtplib.SMTPRecipientsRefused as e:
        return list(e.recipients.values())[0][0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        return "disconnected"


def imap(port, password):
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("demo", password)
    return c


step = sys.argv[1]
if step == "send":
    port, source, to, subject, body = sys.argv[2:7]
    print(json.dumps({"code": send(int(port), source, to, subject, body.replace("\\n", "\r\n"))}))
elif step == "move":
    c = imap(int(sys.argv[2]), sys.argv[3])
    c.create("Spam")  # as a client does on [TRYCREATE]; NO when it is there
    c.select("INBOX")
    typ, data = c.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    typ, said = c.uid("MOVE", b",".join(uids).decode(), "Spam")
    c.logout()
    print(json.dumps({"moved": len(uids), "said": typ}))
elif step == "count":
    c = imap(int(sys.argv[2]), sys.argv[3])
    counts = {}
    for folder in ["INBOX", "Spam"]:
        typ, data = c.select(folder, readonly=True)
        counts[folder] = int(data[0]) if typ == "OK" else 0
    c.logout()
    print(json.dumps(counts))
elif step == "pop3":
    c = poplib.POP3("127.0.0.1", int(sys.argv[2]), timeout=30)
    c.user("demo")
    c.pass_(sys.argv[3])
    subjects = []
    for n in range(1, c.stat()[0] + 1):
        lines = c.retr(n)[1]
        subjects += [l.decode()[9:] for l in lines if l.startswith(b"Subject: ")]
    c.quit()
    print(json.dumps({"subjects": subjects}))
elif step == "load":
    port, count = int(sys.argv[2]), int(sys.argv[3])
    accepted = []
    for n in range(count):
        code = send(port, "127.0.0.1", "demo@example.test", f"load {n}", "one of many, under load")
        if code != 250:
            break
        accepted.append(n)
    print(json.dumps({"accepted": accepted}))
