#!/bin/bash
# Scenario D: a caller whose Queue() timeout (8 s) expires while agents ring
# (EXITWITHTIMEOUT), for comparison with the abandon sequences.
set -u
A=/work/build/tools/ast.sh
OUT=/work/build/cap/d
rm -rf $OUT; mkdir -p $OUT
: > /work/build/ast-run/log/queue_log
/work/build/tools/amirec.py 127.0.0.1 5038 acdmon acdmon-secret $OUT/live.ami & REC=$!
sleep 2
for a in 2001 2002 2003; do $A "database put agent $a noanswer" >/dev/null; done
$A "channel originate Local/5553001-support-8@queuein application Wait 60"
sleep 11
kill $REC
cp /work/build/ast-run/log/queue_log $OUT/queue_log
