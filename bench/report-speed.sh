#!/bin/bash
# How fast `mailkit report` reads a big site's logs: lines per second and
# peak memory, plain and gzip'ed, one file (one core) and the same lines
# rotated into 12 files (read on every core), at LINES and at a tenth of
# it (memory must not grow with the log); next to pflogsumm, Postfix's log
# summariser, over the same traffic in Postfix's format, in the same run.
# Usage: bench/report-speed.sh [LINES]   (default 10000000)
# Needs: cargo build --release -p site; apt-get install pflogsumm
set -euo pipefail
N=${1:-10000000}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
M=$ROOT/target/release/mailkit
D=/tmp/report-bench
mkdir -p "$D"
make_logs() {
  local n=$1
  if [ ! -f "$D/ours.$n" ]; then
    python3 "$ROOT/bench/report-logs.py" "$n" "$D/ours.$n" "$D/postfix.$n"
    gzip -1 -c "$D/ours.$n" > "$D/ours.$n.gz"
    rm -rf "$D/rotated.$n" && mkdir "$D/rotated.$n"
    split -n l/12 -d "$D/ours.$n" "$D/rotated.$n/mtad.log."
  fi
}
# seconds and peak resident KB of a command, its output thrown away
measure() {
  /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1
}
row() {
  local what=$1 n=$2; shift 2
  read -r secs kb < <(measure "$@")
  awk -v w="$what" -v n="$n" -v s="$secs" -v k="$kb" \
    'BEGIN { printf "| %-44s | %11d | %7.2f | %12.0f | %7.1f |\n", w, n, s, (s > 0 ? n / s : 0), k / 1024 }'
}
small=$((N / 10))
make_logs "$small"
make_logs "$N"
echo "| what | lines | seconds | lines/s | peak MB |"
echo "|---|---|---|---|---|"
for n in "$small" "$N"; do
  row "mailkit report, one plain file" "$n" "$M" report --utc-offset +09:00 --inside 192.0.2.0/28 "$D/ours.$n"
done
row "mailkit report, one gzip'ed file" "$N" "$M" report --utc-offset +09:00 --inside 192.0.2.0/28 "$D/ours.$N.gz"
row "mailkit report, 12 rotated files" "$N" "$M" report --utc-offset +09:00 --inside 192.0.2.0/28 "$D/rotated.$N"
row "mailkit report, 12 files, --html and charts" "$N" "$M" report --utc-offset +09:00 --inside 192.0.2.0/28 --html "$D/report.html" "$D/rotated.$N"
if command -v pflogsumm > /dev/null; then
  for n in "$small" "$N"; do
    row "pflogsumm, one plain file (Postfix's format)" "$n" pflogsumm "$D/postfix.$n"
  done
fi
