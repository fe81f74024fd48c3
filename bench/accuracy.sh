#!/bin/bash
# The three accuracy settings of the corpus issue in one line (about 10 s):
# 5-fold CV (1-AUC)% with FPR/FNR at the cutoff, split a (1-AUC)% with FNR,
# and online (batches of 10) (1-AUC)%.
# Usage: bench/accuracy.sh [bsfilter-eval options...]   e.g. --robs 0.1
# Needs ../shared/corpus/prepare.sh and cargo build --release -p corpus.
C=/tmp/corpus/spamassassin; E="$(cd "$(dirname "$0")/.." && pwd)/target/release/bsfilter-eval"
cv=$($E --index $C/index --cv 5 "$@" | grep "^| mean")
a=$($E --train $C/splits/a.train --test $C/splits/a.test --root $C "$@" | grep "^| all")
on=$($E --index $C/index --online --batch 10 "$@" | grep "^| all")
echo "cv: $(echo $cv | awk -F'|' '{print $9, "FPR", $6, "FNR", $7}')  a: $(echo $a | awk -F'|' '{print $9, "FNR", $7}')  online: $(echo $on | awk -F'|' '{print $9}')"
