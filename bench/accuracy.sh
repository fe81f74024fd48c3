#!/bin/bash
# usage: acc.sh [eval options...] -> CV mean, split a, online (1-AUC)% and CV FPR/FNR
C=/tmp/corpus/spamassassin; E=/work/main/target/release/bsfilter-eval
cv=$($E --index $C/index --cv 5 "$@" | grep "^| mean")
a=$($E --train $C/splits/a.train --test $C/splits/a.test --root $C "$@" | grep "^| all")
on=$($E --index $C/index --online --batch 10 "$@" | grep "^| all")
echo "cv: $(echo $cv | awk -F'|' '{print $9, "FPR", $6, "FNR", $7}')  a: $(echo $a | awk -F'|' '{print $9, "FNR", $7}')  online: $(echo $on | awk -F'|' '{print $9}')"
