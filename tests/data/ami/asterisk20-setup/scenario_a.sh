#!/bin/bash
# Scenario A: ring cancelled by the caller (item 11), soft hang-up of a
# waiting caller (item 13), agents and callers hanging up first (item 12),
# several agents on calls at once (item 16).
set -u
A=/work/build/tools/ast.sh
OUT=/work/build/cap/a
rm -rf $OUT; mkdir -p $OUT
: > /work/build/ast-run/log/queue_log
/work/build/tools/amirec.py 127.0.0.1 5038 acdmon acdmon-secret $OUT/live.ami & REC=$!
sleep 2
for a in 2001 2002 2003; do $A "database put agent $a noanswer" >/dev/null; done
echo "== caller 5551001 hangs up while all three ring"
$A "channel originate Local/5551001-support-300@queuein application Wait 6"
sleep 8
echo "== caller 5551002 hung up by 'channel request hangup' while waiting"
$A "channel originate Local/5551002-support-300@queuein application Wait 100"
sleep 5
CH=$($A "core show channels concise" | grep '^Local/5551002-support-300@queuein-[0-9a-f]*;2' | cut -d'!' -f1)
echo "request hangup $CH"
$A "channel request hangup $CH"
sleep 3
echo "== agents answer: 2001 hangs up after 6 s, 2002 after 12 s, 2003 after 40 s"
$A "database put agent 2001 answer-6" >/dev/null
$A "database put agent 2002 answer-12" >/dev/null
$A "database put agent 2003 answer-40" >/dev/null
$A "channel originate Local/5551003-support-300@queuein application Wait 60"
sleep 1
$A "channel originate Local/5551004-support-300@queuein application Wait 60"
sleep 1
$A "channel originate Local/5551005-support-300@queuein application Wait 20"
sleep 4
echo "== relist while three agents talk"
kill -USR1 $REC
$A "queue show support"
sleep 20
$A "queue show support"
sleep 25
kill -USR1 $REC
sleep 2
$A "queue show support"
kill $REC
cp /work/build/ast-run/log/queue_log $OUT/queue_log
