"""Writes a big site's logs for bench/report-speed.sh: N lines in mtad's
and imapd's format (the mix of a day at the seed's site: accepted and
delivered messages, refusals, the done and deferred lines nobody counts,
logins), and the same traffic as Postfix would log it, for pflogsumm.

    report-logs.py LINES OURS POSTFIX
"""

import random
import sys

lines, ours_path, postfix_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(7)
causes = ["dnsbl:zen.example", "check_client_access", "content_checks", "relay_denied", "unknown_user"]
# a few thousand distinct lines, cycled with a moving timestamp: the
# reader's cost is per line and per byte, not per distinct line
kinds = []
for i in range(4000):
    ip = f"192.0.2.{rng.randrange(1, 250)}"
    qid = f"{rng.getrandbits(60):015X}"
    size = rng.choice([600, 3000, 8000, 40000, 300000])
    r = rng.random()
    if r < 0.35:
        kinds.append((
            f'INFO queued event="accepted" queue_id={qid} size={size} nrcpt=1 hold=false client=mx{i}.example.org[{ip}] helo="mx{i}.example.org" from=<user{i}@example.org>',
            f"postfix/qmgr[812]: {qid[:10]}: from=<user{i}@example.org>, size={size}, nrcpt=1 (queue active)",
        ))
    elif r < 0.45:
        c = rng.choice(causes)
        kinds.append((
            f'INFO refused event="reject" cause="{c}" client={ip} client_name=unknown helo="x{i}" from=<s{i}@spam.example> to=<alice@example.jp> reply=554 5.7.1 Service unavailable; Client host [{ip}] blocked',
            f"postfix/smtpd[813]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.example; from=<s{i}@spam.example> to=<alice@example.jp> proto=ESMTP helo=<x{i}>",
        ))
    elif r < 0.75:
        kinds.append((
            f'INFO filed event="delivered" queue_id={qid} verdict="{rng.choice(["clean", "clean", "spam"])}" probability=0.012345 user="user{i % 300}" mailbox="/home/user{i % 300}/mail/inbox"',
            f"postfix/local[814]: {qid[:10]}: to=<user{i % 300}@example.jp>, relay=local, delay=0.12, delays=0.05/0.01/0/0.06, dsn=2.0.0, status=sent (delivered to mailbox)",
        ))
    elif r < 0.95:
        kinds.append((
            f'INFO done event="done" queue_id={qid} client=mx{i}.example.org[{ip}] helo=mx{i}.example.org from=<user{i}@example.org> size={size} nrcpt=1 to=<user{i % 300}@example.jp>:sent:2.0.0:local delay=0.12 delays=0.05/0.01/0.06 replies=delivered to mailbox',
            f"postfix/qmgr[812]: {qid[:10]}: removed",
        ))
    else:
        kinds.append((
            f'INFO logged in event="login" service="imap" client={ip} user="user{i % 300}"',
            f"dovecot: imap-login: Login: user=<user{i % 300}>, method=PLAIN, rip={ip}, lip=192.0.2.254, mpid=4242, TLS",
        ))
months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
with open(ours_path, "w") as ours, open(postfix_path, "w") as postfix:
    per_day = max(1, lines // 365)
    for n in range(lines):
        day, second = divmod(n, per_day)
        second = second * 86400 // per_day
        month, mday = min(day // 31, 11), day % 28 + 1
        h, m, s = second // 3600, second // 60 % 60, second % 60
        a, b = kinds[n % len(kinds)]
        ours.write(f"2025-{month + 1:02}-{mday:02}T{h:02}:{m:02}:{s:02}.{n % 1000000:06}Z  {a}\n")
        postfix.write(f"{months[month]} {mday:2} {h:02}:{m:02}:{s:02} mx {b}\n")
