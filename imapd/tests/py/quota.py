"""QUOTA through imaplib: alice's table entry limits her to 2 KB and 4
messages; her INBOX holds three.

Usage: quota.py PORT SCRATCH_DIR
"""
import imaplib
import re
import sys

port = int(sys.argv[1])
m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice", "secret")
typ, caps = m.capability()
assert b"QUOTA" in caps[0].split() and b"QUOTA=RES-STORAGE" in caps[0].split(), caps
typ, data = m.getquotaroot("INBOX")
assert typ == "OK", (typ, data)
roots, quota = data
assert roots == [b'"INBOX" ""'], roots
found = re.fullmatch(rb'"" \(STORAGE (\d+) 2 MESSAGE 3 4\)', quota[0])
assert found and int(found.group(1)) >= 1, quota
typ, data = m.getquota('""')
assert typ == "OK" and data == quota, (typ, data)
typ, data = m.getquota('"elsewhere"')
assert typ == "NO" and b"[NONEXISTENT]" in data[0], (typ, data)
typ, data = m.setquota('""', "(STORAGE 10)")
assert typ == "NO" and b"user table" in data[0], (typ, data)
# a fourth message fits, a fifth does not (MESSAGE 4)
typ, data = m.append("INBOX", None, None, b"Subject: four\r\n\r\nx\r\n")
assert typ == "OK", (typ, data)
typ, data = m.append("INBOX", None, None, b"Subject: five\r\n\r\nx\r\n")
assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
m.create("Archive")
m.select("INBOX")
typ, data = m.copy("4", "Archive")
assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
typ, data = m._simple_command("MOVE", "4", "Archive")
assert typ == "OK", (typ, data)
m.logout()
print("quota: ok")
