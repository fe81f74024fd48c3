#!/usr/bin/env bash
# mtad beside Postfix, same machine, same run: Postfix's smtp-source sends
# 5 KB messages over 10 and 50 sessions to a local mailbox; printed for
# each server: accepted msg/s (smtp-source's wall clock: every 250 after
# DATA), delivered msg/s (until the last is in the mbox: Postfix's
# local(8), mtad's lda), CPU ms per message (the server's whole process
# tree, lda and local included, smtp-source not), fsync+fdatasync calls
# per message (perf, system-wide, during the run); then N idle sessions
# (greeting read, EHLO answered) held open, and the memory that costs.
#
# With CHAIN=1 both servers run the same filter chain from the same files
# (the seed site's access list and Subject rules, grown to its sizes: 55
# client entries, 63 header rules, 10 body rules, a sender table) and ask
# the same DNS lists (a client list and a sender-domain list, served by
# dnsmasq on 127.0.0.1:53; Postfix reads it through a resolv.conf bound
# over /etc/resolv.conf in its own mount namespace), with mynetworks moved
# off loopback so that smtp-source's mail is checked; mtad also scans for
# viruses (built-in) and scores with the site's Bayes database (trained on
# samples/), which Postfix has no counterpart for without content filters.
#
# Usage: [CHAIN=1] bench/mtad-vs-postfix.sh [MESSAGES] [IDLE] [POSTFIX_IDLE]
#   MESSAGES per run (default 5000); IDLE sessions held by mtad (default
#   5000); POSTFIX_IDLE by Postfix (default 1000: a process each, 1.6 MB
#   of PSS apiece, so 5,000 would take 8 GB)
# Needs: root; postfix (apt, for smtp-source and the scratch Postfix of
# ../shared/proto/postfix-scratch.sh), linux-perf; a release build
# (cargo build --release -p mta); for CHAIN=1 also dnsmasq (dnsmasq-base)
# and a release bsfilter (cargo build --release -p bsfilter).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PROTO="${PROTO:-$ROOT/../shared/proto}"
N="${1:-5000}"; IDLE="${2:-5000}"; PF_IDLE="${3:-1000}"
MTAD="${MTAD_BIN:-$ROOT/target/release/mtad}"
[ -x "$MTAD" ] || { echo "build first: cargo build --release -p mta" >&2; exit 1; }
W=/tmp/mtad-bench; PF=/tmp/proto/pf; PORT=12625
export PF
if ss -ltn | grep -qE ":($PORT|12526) "; then echo "ports $PORT or 12526 are taken: stop what listens there" >&2; exit 1; fi
rm -rf "$W" "$PF"; mkdir -p "$W"
CHAIN="${CHAIN:-0}"; LABEL=""
if [ "$CHAIN" = 1 ]; then
  LABEL="+chain"; T="$W/tables"; mkdir -p "$T"; chmod 755 "$W" "$T"
  { echo "150.59.112.17 OK"; echo "61.49.138.219 REJECT"
    for i in $(seq 1 53); do echo "61.$i.200.$i REJECT"; done; } > "$T/client_access"
  { cat <<'RULES'
/^Subject: .*Make Money Fast/ REJECT
/^Subject:.*V[i|1]agra/ REJECT
/^Subject:.*V.I.A.G.R.A/ REJECT
/^Subject:.*F￥.R￥.E￥.E/i REJECT
/^Subject:.*ink*jet.*cartridges/ REJECT
/^Subject:.*sex life/ REJECT
/^Subject:.*fat.*muscle/ REJECT
RULES
    for i in $(seq 1 56); do echo "/^Subject:.*special offer $i/ REJECT"; done; } > "$T/header_checks"
  for i in $(seq 1 10); do echo "/casino bonus $i/ REJECT"; done > "$T/body_checks"
  printf 'spammer.example REJECT\n' > "$T/sender_access"
  mkdir -p "$W/pmconf"; : > "$W/pmconf/main.cf"
  for t in client_access sender_access; do postmap -c "$W/pmconf" "hash:$T/$t"; done
  # the DNS lists: one listed client (not the benchmark's), nothing else
  if ss -lun | grep -q '127.0.0.1:53 '; then echo "127.0.0.1:53 is taken: stop what listens there" >&2; exit 1; fi
  dnsmasq --keep-in-foreground --port=53 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --local=/bl.bench.test/ --local=/dbl.bench.test/ --address=/2.0.0.127.bl.bench.test/127.0.0.2 \
    --pid-file="$W/dnsmasq.pid" 2> "$W/dnsmasq.log" & DNSMASQ_PID=$!
  echo "nameserver 127.0.0.1" > "$W/resolv.conf"
  # the site's Bayes database, trained on the samples
  BSF="${BSFILTER_BIN:-$ROOT/target/release/bsfilter}"
  [ -x "$BSF" ] || { echo "build first: cargo build --release -p bsfilter" >&2; exit 1; }
  "$BSF" --homedir "$T/sitedb" --add-spam "$ROOT"/samples/spam/*.eml
  "$BSF" --homedir "$T/sitedb" --add-clean "$ROOT"/samples/ham/*.eml
  "$BSF" --homedir "$T/sitedb" --update "$ROOT"/samples/ham/*.eml > /dev/null || true
  chmod -R a+rX "$T/sitedb"
fi
ulimit -n "$(ulimit -Hn)"  # the idle sessions: one descriptor each, on both ends

# perf counts every fsync and fdatasync on the machine while $@ runs
syncs() {
  perf stat -a -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -o "$W/perf.txt" -- "$@" > "$W/run.txt"
  awk -F, '/sys_enter/ {n += $1} END {print n}' "$W/perf.txt"
}
# one run: SERVER TREE_PID SESSIONS DELIVERED_COUNT_COMMAND TARGET
run() {
  local name=$1 pid=$2 s=$3 count=$4 target=$5
  local before cpu0 t0 fs t1 n cpu1 t2
  before=$(eval "$count")
  cpu0=$(python3 "$HERE/proc-tree.py" cpu "$pid")
  t0=$(date +%s.%N)
  fs=$(syncs smtp-source -s "$s" -m "$N" -l 5120 -f sender@example.org -t "$TO" "$target")
  t1=$(date +%s.%N)
  while n=$(( $(eval "$count") - before )); [ "$n" -lt "$N" ]; do
    sleep 0.05
    python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $t1 < 300 else 1)" || { echo "$name: only $n delivered" >&2; break; }
  done
  t2=$(date +%s.%N)
  cpu1=$(python3 "$HERE/proc-tree.py" cpu "$pid")
  python3 -c "
a=$t1-$t0; d=$t2-$t0
print(f'$name sessions=$s: accepted {$N/a:.0f} msg/s, delivered {$n/d:.0f} msg/s, '
      f'{($cpu1-$cpu0)/$N:.2f} CPU ms/msg, fsync+fdatasync during the send {$fs/$N:.2f}/msg')"
}
idle() { # NAME PID PORT SESSIONS
  local fifo="$W/idle.fifo"; rm -f "$fifo" "$W/idle.txt"; mkfifo "$fifo"
  python3 "$HERE/idle-sessions.py" 127.0.0.1 "$3" "$4" < "$fifo" > "$W/idle.txt" & local holder=$!
  exec 7> "$fifo"
  while ! grep -q held "$W/idle.txt" 2>/dev/null; do sleep 0.2; done
  read -r procs rss pss < <(python3 "$HERE/proc-tree.py" mem "$2")
  echo "$1: $(cat "$W/idle.txt") idle sessions: $procs processes, RSS $((rss / 1024)) MB, PSS $((pss / 1024)) MB ($((pss / $4)) kB a session)"
  exec 7>&-; wait "$holder" || true
}

# --- Postfix (local(8) into an mbox as vmail) ---
if [ "$CHAIN" = 1 ]; then
  unshare -m sh -c "mount --bind '$W/resolv.conf' /etc/resolv.conf && bash '$PROTO/postfix-scratch.sh' start local" > /dev/null
else
  bash "$PROTO/postfix-scratch.sh" start local > /dev/null
fi
if [ "$CHAIN" = 1 ]; then
  postconf -c "$PF/etc" -e mynetworks=10.255.255.255/32 \
    "smtpd_recipient_restrictions=permit_mynetworks, reject_unauth_destination, check_client_access hash:$T/client_access, check_sender_access hash:$T/sender_access, reject_rbl_client bl.bench.test, reject_rhsbl_sender dbl.bench.test" \
    "header_checks=regexp:$T/header_checks" "body_checks=regexp:$T/body_checks"
  postfix -c "$PF/etc" reload > /dev/null 2>&1; sleep 1
fi
trap 'bash "$PROTO/postfix-scratch.sh" stop > /dev/null 2>&1 || true; [ -n "${MTAD_PID:-}" ] && kill "$MTAD_PID" 2> /dev/null; [ -n "${DNSMASQ_PID:-}" ] && kill "$DNSMASQ_PID" 2> /dev/null || true' EXIT
MASTER=$(tr -d ' ' < "$PF/spool/pid/master.pid")
export TO=vmail@localhost
for s in 10 50; do
  run "Postfix$LABEL" "$MASTER" "$s" "grep -c 'status=sent' $PF/maillog || true" 127.0.0.1:12526
done
postconf -c "$PF/etc" -e default_process_limit=$((PF_IDLE + 100)) > /dev/null
postfix -c "$PF/etc" reload > /dev/null 2>&1; sleep 1
idle Postfix "$MASTER" 12526 "$PF_IDLE"
bash "$PROTO/postfix-scratch.sh" stop > /dev/null

# --- mtad (lda into an mbox as vmail; the filter off, as local(8) has none) ---
VUID=$(id -u vmail)
mkdir -p "$W/home/vmail/mail"; chown -R vmail:vmail "$W/home"
echo "vmail:{PLAIN}x:$VUID:$VUID::$W/home/vmail::" > "$W/passwd"
cat > "$W/mailkit.toml" <<EOF
[users]
passwd_file = "$W/passwd"
system_users = false
[mailbox]
inbox = "~/mail/inbox"
folders = "~/mail"
[filter]
enabled = false
[mtad]
hostname = "mx.bench.test"
local_domains = ["localhost"]
listen = ["127.0.0.1:$PORT"]
queue_dir = "$W/queue"
run_as = "nobody"
max_connections = $((IDLE + 100))
max_connections_per_ip = $((IDLE + 100))
EOF
if [ "$CHAIN" = 1 ]; then cat >> "$W/mailkit.toml" <<EOF
mynetworks = ["10.255.255.255/32"]
check_client_access = ["hash:$T/client_access"]
check_sender_access = ["hash:$T/sender_access"]
header_checks = ["regexp:$T/header_checks"]
body_checks = ["regexp:$T/body_checks"]
resolver = "127.0.0.1:53"
reject_rbl_client = ["bl.bench.test"]
reject_rhsbl_sender = ["dbl.bench.test"]
virus_scanner = "builtin"
site_bayes_db = "$T/sitedb"
EOF
fi
"$MTAD" --config "$W/mailkit.toml" 2> "$W/mtad.log" & MTAD_PID=$!
while ! grep -q ready "$W/mtad.log"; do kill -0 "$MTAD_PID" 2> /dev/null || { cat "$W/mtad.log"; exit 1; }; sleep 0.1; done
for s in 10 50; do
  run "mtad$LABEL" "$MTAD_PID" "$s" "grep -c 'event=\"done\"' $W/mtad.log || true" "127.0.0.1:$PORT"
done
idle mtad "$MTAD_PID" "$PORT" "$IDLE"
kill "$MTAD_PID"; wait "$MTAD_PID" || true; MTAD_PID=
