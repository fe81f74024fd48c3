#!/usr/bin/env bash
# Speed and accuracy of our bsfilter beside the peer filters, same split,
# same machine, same run.
#
# Usage: bench/bsfilter-vs-peers.sh [SPLIT] [OUTDIR] [PEER...]
#   SPLIT   a split name under $CORPUS/splits (default: a) or "cv" for all
#           five cross-validation folds
#   OUTDIR  default /tmp/bsfilter-bench
#   PEER    peers to run beside ours (default: bsfilter bogofilter spamprobe
#           sylfilter); "none" runs only ours
# Needs: ../shared/corpus/prepare.sh run first, ruby-qdbm for the original
# bsfilter's qdbm database, (CORPUS, default
# /tmp/corpus/spamassassin), the peers from apt (see ../shared/peers/README.md),
# and a release build (cargo build --release -p bsfilter).
#
# Ours is run the way peers.sh runs the original bsfilter: whole processes,
# all training files as arguments (one process per class), then one process
# with --list-spam over the test files. Results land in OUTDIR/<split>/ours
# in peers.sh's layout, so metrics.py tabulates ours and the peers together.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared}"
CORPUS="${CORPUS:-/tmp/corpus/spamassassin}"
SPLIT="${1:-a}"; OUT="${2:-/tmp/bsfilter-bench}"; shift $(( $# > 2 ? 2 : $# ))
PEERS=("$@"); [ ${#PEERS[@]} -eq 0 ] && PEERS=(bsfilter bogofilter spamprobe sylfilter)
BIN="${BSFILTER_BIN:-$ROOT/target/release/bsfilter}"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p bsfilter" >&2; exit 1; }
export CORPUS

run_split() { local s="$1" O="$OUT/$1"
  mkdir -p "$O"
  if [ "${PEERS[0]}" != none ]; then
    # the original's default sdbm database fails near 5,000 messages
    BSFILTER_OPTS="${BSFILTER_OPTS:---db qdbm}" bash "$SHARED/peers/peers.sh" \
      "$CORPUS/splits/$s.train" "$CORPUS/splits/$s.test" "$O" "${PEERS[@]}" > /dev/null
  else
    awk '$1=="spam"{print $2}' "$CORPUS/splits/$s.train" > "$O/train.spam"
    awk '$1=="ham"{print $2}'  "$CORPUS/splits/$s.train" > "$O/train.ham"
    awk '{print $2}' "$CORPUS/splits/$s.test" > "$O/test.files"
    cp "$CORPUS/splits/$s.test" "$O/test.list"
  fi
  local D="$O/ours" H; H="$(mktemp -d)"
  rm -rf "$D"; mkdir -p "$D"
  cd "$CORPUS"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -a -o "$D/train.time" xargs -x -s 2000000 -a "$O/train.spam" "$BIN" --homedir "$H" --add-spam
  /usr/bin/time -v -a -o "$D/train.time" xargs -x -s 2000000 -a "$O/train.ham" "$BIN" --homedir "$H" --add-clean
  t1=$(date +%s.%N); echo "$t0 $t1" > "$D/train.wall"
  t0=$(date +%s.%N)
  /usr/bin/time -v -a -o "$D/test.time" xargs -x -s 2000000 -a "$O/test.files" "$BIN" --homedir "$H" --list-spam \
    > "$D/raw.out" 2> "$D/raw.err" || true
  t1=$(date +%s.%N); echo "$t0 $t1" > "$D/test.wall"
  python3 - "$D" <<'PY'
import sys; D=sys.argv[1]
spam=set(l.strip() for l in open(D+"/raw.out"))
prob={}
for l in open(D+"/raw.err", errors="replace"):
    p=l.split()
    if l.startswith("combined probability") and len(p)==5: prob[p[2]]=float(p[4])
with open(D+"/scores","w") as o:
    for l in open(D+"/../test.list"):
        lab,f=l.split()
        o.write(f"{lab} {prob.get(f,'nan')} {'S' if f in spam else 'H'} {f}\n")
PY
  du -sb "$H" | cut -f1 > "$D/db.bytes"
  rm -rf "$H"
  cd - > /dev/null
}

if [ "$SPLIT" = cv ]; then
  for k in 0 1 2 3 4; do run_split "cv$k"; done
  python3 "$SHARED/peers/metrics.py" "$OUT"/cv?
  python3 "$SHARED/peers/metrics.py" --cv "$OUT"/cv?
else
  run_split "$SPLIT"
  python3 "$SHARED/peers/metrics.py" "$OUT/$SPLIT"
fi

# One message classified by a fresh process, as a delivery does (median).
if command -v hyperfine > /dev/null; then
  H="$(mktemp -d)"; cd "$CORPUS"
  first_split="$SPLIT"; [ "$SPLIT" = cv ] && first_split=cv0
  xargs -x -s 2000000 -a "$OUT/$first_split/train.spam" "$BIN" --homedir "$H" --add-spam
  xargs -x -s 2000000 -a "$OUT/$first_split/train.ham" "$BIN" --homedir "$H" --add-clean
  msg="$(head -1 "$OUT/$first_split/test.files")"
  hyperfine -N -i --warmup 10 --runs 300 --export-json "$OUT/single.json" \
    "$BIN --homedir $H $msg" > /dev/null 2>&1 || true
  python3 -c "import json,sys; r=json.load(open('$OUT/single.json'))['results'][0]; print(f'single message, fresh process: median {r[\"median\"]*1000:.2f} ms, mean {r[\"mean\"]*1000:.2f} ms')"
  rm -rf "$H"
fi
