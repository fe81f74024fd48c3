#!/usr/bin/env bash
# imapd beside Dovecot on the same mbox files, same machine, same run:
# IMAP (imap-bench.py, imap-resync.py, imap-compress.py, imap-clients.py) and POP3 (pop3-check.py: RETR of
# the 1,000-message INBOX of user u1, plain and over TLS).
#
# Usage: bench/imapd-vs-dovecot.sh [MESSAGES] [CLIENTS] [SECONDS]
#   MESSAGES  size of the big INBOX (default 10000 × 5 KB, as the issue asks)
#   CLIENTS   concurrent clients for the mixed-command run (default 20),
#             each its own user with a 1,000-message INBOX
# Needs: dovecot-imapd (apt), a release build (cargo build --release -p
# imapd), ../shared/proto (gen-mbox.py, imap-bench.py, dovecot-scratch.sh),
# root (to drop the page cache for the cold SELECT, and for Dovecot's vmail).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PROTO="${PROTO:-$ROOT/../shared/proto}"
N="${1:-10000}"; CLIENTS="${2:-20}"; SECONDS_RUN="${3:-10}"
BIN="${IMAPD_BIN:-$ROOT/target/release/imapd}"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p imapd" >&2; exit 1; }
W=/tmp/imapd-bench; DV=/tmp/imapd-bench/dovecot; PORT=11143
rm -rf "$W"; mkdir -p "$W"
export DV IMAP_PORT=10143
python3 "$PROTO/gen-mbox.py" "$W/big.mbox" "$N"
python3 "$PROTO/gen-mbox.py" "$W/small.mbox" 1000
cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop the page cache)"; }

# --- Dovecot ---
# (with its COMPRESS=DEFLATE plugin, which the scratch configuration leaves out)
conf="$(bash "$PROTO/dovecot-scratch.sh" conf | tail -1)"
printf 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n' >> "$conf"
dovecot -c "$conf"; sleep 1
trap 'bash "$PROTO/dovecot-scratch.sh" stop > /dev/null 2>&1 || true; pkill -f "$BIN --config $W" || true' EXIT
place() { # user mbox owner
  install -d -o "$3" -g "$3" "$DV/home/$1" "$DV/home/$1/mail"
  install -o "$3" -g "$3" -m 600 "$2" "$DV/home/$1/mail/inbox"
}
place testuser "$W/big.mbox" vmail
for i in $(seq 1 "$CLIENTS"); do place "u$i" "$W/small.mbox" vmail; done
echo "== Dovecot: $N messages"; cold
python3 "$PROTO/imap-bench.py" 127.0.0.1 10143 testuser testpass --move 100 --copy 100 --fetch-each 200
echo "== Dovecot: CONDSTORE resync"
python3 "$ROOT/bench/imap-resync.py" 127.0.0.1 10143 testuser testpass 10
echo "== Dovecot: COMPRESS=DEFLATE"
python3 "$ROOT/bench/imap-compress.py" 127.0.0.1 10143 testuser testpass
echo "== Dovecot: $CLIENTS clients"
python3 "$ROOT/bench/imap-clients.py" 127.0.0.1 10143 u pass "$CLIENTS" "$SECONDS_RUN"
echo "== Dovecot: POP3"
python3 "$PROTO/pop3-check.py" 127.0.0.1 10110 10995 u1 pass | grep -E "RETR all"
cp "$DV/cert.pem" "$DV/key.pem" "$W/"
bash "$PROTO/dovecot-scratch.sh" stop > /dev/null

# --- ours ---
{ echo "testuser:{PLAIN}testpass::::$W/home/testuser::"
  for i in $(seq 1 "$CLIENTS"); do echo "u$i:{PLAIN}pass::::$W/home/u$i::"; done; } > "$W/passwd"
printf '[users]\npasswd_file = "%s/passwd"\nsystem_users = false\n[mailbox]\ninbox = "~/mail/inbox"\nfolders = "~/mail"\n[imapd]\nlisten = ["127.0.0.1:%s"]\npop3_listen = ["127.0.0.1:11110"]\npop3s_listen = ["127.0.0.1:11995"]\ntls_cert = "%s/cert.pem"\ntls_key = "%s/key.pem"\n' "$W" "$PORT" "$W" "$W" > "$W/mailkit.toml"
mkdir -p "$W/home/testuser/mail"; cp "$W/big.mbox" "$W/home/testuser/mail/inbox"
for i in $(seq 1 "$CLIENTS"); do mkdir -p "$W/home/u$i/mail"; cp "$W/small.mbox" "$W/home/u$i/mail/inbox"; done
"$BIN" --config "$W/mailkit.toml" 2> "$W/imapd.log" &
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo "== ours: $N messages"; cold
python3 "$PROTO/imap-bench.py" 127.0.0.1 "$PORT" testuser testpass --move 100 --copy 100 --fetch-each 200
echo "== ours: CONDSTORE resync"
python3 "$ROOT/bench/imap-resync.py" 127.0.0.1 "$PORT" testuser testpass 10
echo "== ours: COMPRESS=DEFLATE"
python3 "$ROOT/bench/imap-compress.py" 127.0.0.1 "$PORT" testuser testpass
echo "== ours: $CLIENTS clients"
python3 "$ROOT/bench/imap-clients.py" 127.0.0.1 "$PORT" u pass "$CLIENTS" "$SECONDS_RUN"
echo "== ours: POP3"
python3 "$PROTO/pop3-check.py" 127.0.0.1 11110 11995 u1 pass | grep -E "RETR all"
