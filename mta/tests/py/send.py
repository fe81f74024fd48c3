"""Sends one message with Python's smtplib and prints what happened, as JSON.

Usage: send.py PORT [--source ADDR] [--starttls] [--ssl] [--cafile PEM]
               [--auth USER PASSWORD] [--from ADDR] [--to ADDR]...
               [--mail-option OPT]... [--rcpt-option OPT]... [--message TEXT]

Prints {"ehlo": [features], "refused": {rcpt: [code, text]}, "error": [code, text] or null,
        "auth": "ok" | [code, text] | null}
"""
import json
import smtplib
import ssl
import sys

args = sys.argv[1:]
port = int(args.pop(0))
opts = {"to": [], "mail": [], "rcpt": []}
while args:
    a = args.pop(0)
    if a == "--source": opts["source"] = args.pop(0)
    elif a == "--starttls": opts["starttls"] = True
    elif a == "--ssl": opts["ssl"] = True
    elif a == "--cafile": opts["cafile"] = args.pop(0)
    elif a == "--auth": opts["auth"] = (args.pop(0), args.pop(0))
    elif a == "--from": opts["from"] = args.pop(0)
    elif a == "--to": opts["to"].append(args.pop(0))
    elif a == "--mail-option": opts["mail"].append(args.pop(0))
    elif a == "--rcpt-option": opts["rcpt"].append(args.pop(0))
    elif a == "--message": opts["message"] = args.pop(0)
    else: raise SystemExit("unknown option " + a)

context = None
if "cafile" in opts:
    context = ssl.create_default_context(cafile=opts["cafile"])
    context.check_hostname = False
source = (opts["source"], 0) if "source" in opts else None
result = {"ehlo": None, "refused": {}, "error": None, "auth": None}
if opts.get("ssl"):
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=context, source_address=source, timeout=30)
else:
    s = smtplib.SMTP("127.0.0.1", port, source_address=source, timeout=30)
s.ehlo("client.example.org")
if opts.get("starttls"):
    s.starttls(context=context)
    s.ehlo("client.example.org")
result["ehlo"] = sorted(s.esmtp_features.keys())
if "auth" in opts:
    try:
        s.login(*opts["auth"])
        result["auth"] = "ok"
    except smtplib.SMTPAuthenticationError as e:
        result["auth"] = [e.smtp_code, e.smtp_error.decode()]
    except smtplib.SMTPNotSupportedError as e:
        result["auth"] = [0, str(e)]
if opts["to"]:
    message = opts.get("message", "Subject: test\r\n\r\nhello\r\n")
    try:
        result["refused"] = {
            k: [v[0], v[1].decode()]
            for k, v in s.sendmail(opts.get("from", "sender@example.org"), opts["to"], message.encode(),
                                   mail_options=opts["mail"], rcpt_options=opts["rcpt"]).items()
        }
    except smtplib.SMTPRecipientsRefused as e:
        result["refused"] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
        result["error"] = [0, "all recipients refused"]
    except smtplib.SMTPResponseException as e:
        result["error"] = [e.smtp_code, e.smtp_error.decode()]
try:
    s.quit()
except Exception:
    pass
print(json.dumps(result))
