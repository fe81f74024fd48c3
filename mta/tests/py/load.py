"""Sends messages from several clients at once; appends the Subject of each
message the server acknowledged (250) to OUT, one a line, as it is acknowledged.

Usage: load.py PORT CLIENTS PER_CLIENT OUT
"""
import smtplib
import sys
import threading

port, clients, per, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()

def client(k):
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        s.ehlo("load.example.org")
        for i in range(per):
            subject = f"load-{k}-{i}"
            s.sendmail("load@example.org", ["alice@example.jp"],
                       f"Subject: {subject}\r\n\r\nthe body of {subject}\r\n".encode())
            with lock:
                with open(out, "a") as f:
                    f.write(subject + "\n")
                    f.flush()
    except Exception:
        pass  # the server was killed: what was acknowledged is in OUT

threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
