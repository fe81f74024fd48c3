#!/usr/bin/env bash
# Delivery speed: our lda (filtering with bsfilter) beside dovecot-lda (no
# filtering) and procmail piping through the original bsfilter, all from
# fresh processes into one mbox, same messages, same run.
#
# Usage: bench/lda-vs-peers.sh [COUNT] [PEER_COUNT]
#   COUNT       messages delivered by lda and dovecot-lda (default 2000)
#   PEER_COUNT  messages for procmail+bsfilter, which is ~100x slower (default 300)
# Env: LDA_BASELINE=PATH  an older lda binary, run interleaved with ours
#   (three rounds each, same messages and database) before the peers: a
#   change to lda is judged against the binary before it, same hour.
# Needs (run as root): ../shared/corpus/prepare.sh run first; cargo build --release;
#   apt-get install -y dovecot-core procmail bsfilter ruby-qdbm
# Messages: the test half of split a (SpamAssassin corpus); both filters are
# trained on its training half. Mail belongs to uid 65534 (nobody): lda and
# dovecot-lda are started as root and switch to it, as under an MTA.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
CORPUS="${CORPUS:-/tmp/corpus/spamassassin}"
COUNT="${1:-2000}"; PEER_COUNT="${2:-300}"
LDA="$ROOT/target/release/lda"; BSF="$ROOT/target/release/bsfilter"
SPAWN="$HERE/spawn-deliveries.py"
[ -x "$LDA" ] && [ -x "$BSF" ] || { echo "build first: cargo build --release" >&2; exit 1; }
W="$(mktemp -d /tmp/lda-bench.XXXX)"; chmod 755 "$W"
# Run installed copies, as a site does (`install -m 755 target/release/lda
# /usr/local/bin/`) and as the peers run from their dpkg-installed files:
# the linker writes its output in small pieces, and executing that file
# straight from target/ costs a fresh process more page faults (its page
# cache is in small folios) — ~4 % of a delivery, measured.
mkdir -p "$W/bin"; install -m 755 "$LDA" "$BSF" "$W/bin/"
LDA="$W/bin/lda"; BSF="$W/bin/bsfilter"
trap '[ -f "$W/run/master.pid" ] && kill "$(cat "$W/run/master.pid")" 2>/dev/null; rm -rf "$W"' EXIT

awk -v C="$CORPUS" -v N="$COUNT" 'NR<=N {print C "/" $2}' "$CORPUS/splits/a.test" > "$W/messages"
head -n "$PEER_COUNT" "$W/messages" > "$W/peer-messages"
H="$W/home/alice"; mkdir -p "$H"
echo "alice:{PLAIN}pw:65534:65534::$H::" > "$W/passwd"

# --- training: ours and the original bsfilter, on split a's training half
cd "$CORPUS"
awk '$1=="spam"{print $2}' splits/a.train > "$W/train.spam"; awk '$1=="ham"{print $2}' splits/a.train > "$W/train.ham"
xargs -x -s 2000000 -a "$W/train.spam" "$BSF" --homedir "$H/.bsfilter" -s
xargs -x -s 2000000 -a "$W/train.ham" "$BSF" --homedir "$H/.bsfilter" -c
xargs -a "$W/train.spam" bsfilter --db qdbm --homedir "$H/.bsfilter-orig" -s
xargs -a "$W/train.ham" bsfilter --db qdbm --homedir "$H/.bsfilter-orig" -c
bsfilter --db qdbm --homedir "$H/.bsfilter-orig" -u
cd - > /dev/null
chown -R 65534:65534 "$H"

# --- ours
cat > "$W/mailkit.toml" <<CONF
[users]
passwd_file = "$W/passwd"
system_users = false
[mailbox]
inbox = "~/mail/inbox"
folders = "~/mail"
CONF
ours() { rm -rf "$H/mail"; python3 "$SPAWN" --workers "$1" "$W/$2" -- "$LDA" --config "$W/mailkit.toml" -d alice -f bench@example.com; }
if [ -n "${LDA_BASELINE:-}" ]; then
  install -m 755 "$LDA_BASELINE" "$W/bin/lda-baseline"
  base() { rm -rf "$H/mail"; python3 "$SPAWN" --workers "$1" "$W/$2" -- "$W/bin/lda-baseline" --config "$W/mailkit.toml" -d alice -f bench@example.com; }
  for round in 1 2 3; do
    echo "round $round: lda (this build), sequential: $(ours 1 messages)"
    echo "round $round: lda (baseline),   sequential: $(base 1 messages)"
  done
fi
echo "lda (ours, filtering), sequential:   $(ours 1 messages)"
echo "  inbox $(grep -c '^From ' "$H/mail/inbox" || true), Spam $(grep -c '^From ' "$H/mail/Spam" || true)"
echo "lda (ours, filtering), 8 concurrent: $(ours 8 messages)"
echo "  inbox $(grep -c '^From ' "$H/mail/inbox" || true), Spam $(grep -c '^From ' "$H/mail/Spam" || true)"

# --- dovecot-lda (no filtering), same mbox layout
mkdir -p "$W/run" "$W/state"
cat > "$W/dovecot.conf" <<CONF
base_dir = $W/run
state_dir = $W/state
log_path = $W/dovecot.log
ssl = no
protocols =
postmaster_address = postmaster@localhost
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $W/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $W/passwd
}
mail_location = mbox:~/mail:INBOX=~/mail/inbox
CONF
dovecot -c "$W/dovecot.conf"; sleep 0.5
dlda() { rm -rf "$H/mail"; python3 "$SPAWN" --workers "$1" "$W/$2" -- /usr/lib/dovecot/dovecot-lda -c "$W/dovecot.conf" -d alice -f bench@example.com; }
echo "dovecot-lda (no filter), sequential:   $(dlda 1 messages)"
echo "dovecot-lda (no filter), 8 concurrent: $(dlda 8 messages)"

# --- procmail + the original bsfilter
cat > "$W/procmailrc" <<CONF
SHELL=/bin/sh
MAILDIR=$H/mail
DEFAULT=$H/mail/inbox
LOCKFILE=
:0 fw
| bsfilter --db qdbm --homedir $H/.bsfilter-orig --pipe --insert-flag --insert-probability
:0:
* ^X-Spam-Flag: Yes
Spam
CONF
pm() { rm -rf "$H/mail"; mkdir -p "$H/mail"; python3 "$SPAWN" --workers "$1" "$W/$2" -- procmail -m "$W/procmailrc"; }
echo "procmail + original bsfilter, sequential:   $(pm 1 peer-messages)"
echo "procmail + original bsfilter, 8 concurrent: $(pm 8 peer-messages)"
