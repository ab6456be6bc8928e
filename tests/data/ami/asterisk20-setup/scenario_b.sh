#!/bin/bash
# Scenario B: static member added by `queue reload members` (item 15), a
# ladder-style pause with reason "acdmon" of static members (item 14).
set -u
A=/work/build/tools/ast.sh
OUT=/work/build/cap/b
rm -rf $OUT; mkdir -p $OUT
: > /work/build/ast-run/log/queue_log
EVENTS=agent,call,system /work/build/tools/amirec.py 127.0.0.1 5038 acdmonsys acdmon-secret $OUT/live.ami & REC=$!
sleep 2
echo "== pause 2001 and 2002 in support with reason acdmon (pause-mode sign-out)"
$A "queue pause member Local/2001@agents/n queue support reason acdmon"
$A "queue pause member Local/2002@agents/n queue support reason acdmon"
sleep 1
echo "== 2003 on lunch"
$A "queue pause member Local/2003@agents/n queue support reason lunch"
sleep 1
echo "== add static member 2004 to queues.conf; queue reload members"
sed -i 's|^member => Local/2003@agents/n,0,2003$|&\nmember => Local/2004@agents/n,0,2004|' /work/build/ast-etc/queues.conf
$A "queue reload members"
sleep 2
echo "== module reload app_queue.so"
$A "module reload app_queue.so"
sleep 2
echo "== unpause 2001 (pause-mode sign-in)"
$A "queue unpause member Local/2001@agents/n queue support"
sleep 1
kill -USR1 $REC
sleep 2
$A "queue show support"
kill $REC
cp /work/build/ast-run/log/queue_log $OUT/queue_log
# restore queues.conf
sed -i '/^member => Local\/2004@agents\/n,0,2004$/d' /work/build/ast-etc/queues.conf
