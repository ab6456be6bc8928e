#!/bin/bash
# Scenario C: callers waiting while Asterisk restarts (item 13: SoftHangupRequest Cause 4),
# then a caller hung up with the AMI Hangup action after the restart.
set -u
A=/work/build/tools/ast.sh
OUT=/work/build/cap/c
rm -rf $OUT; mkdir -p $OUT
: > /work/build/ast-run/log/queue_log
/work/build/tools/amirec.py 127.0.0.1 5038 acdmon acdmon-secret $OUT/live.ami & REC=$!
sleep 2
for a in 2001 2002 2003; do $A "database put agent $a noanswer" >/dev/null; done
$A "queue unpause member Local/2002@agents/n queue support"
$A "queue unpause member Local/2003@agents/n queue support"
$A "channel originate Local/5552001-support-300@queuein application Wait 200"
sleep 1
$A "channel originate Local/5552002-sales-300@queuein application Wait 200"
sleep 6
echo "== core restart now"
$A "core restart now"
sleep 12
$A "core show version"
echo "== after restart: caller hung up by the AMI Hangup action"
for a in 2001 2002 2003; do $A "database put agent $a noanswer" >/dev/null; done
$A "channel originate Local/5552003-support-300@queuein application Wait 200"
sleep 4
CH=$($A "core show channels concise" | grep '^Local/5552003-support-300@queuein-[0-9a-f]*;2' | cut -d'!' -f1)
python3 - "$CH" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", 5038))
s.sendall(b"Action: Login\r\nUsername: driver\r\nSecret: driver-secret\r\nEvents: off\r\n\r\n")
time.sleep(0.3)
s.sendall(f"Action: Hangup\r\nChannel: {sys.argv[1]}\r\n\r\n".encode())
time.sleep(0.5)
print(s.recv(4096).decode())
PY
sleep 3
kill $REC
cp /work/build/ast-run/log/queue_log $OUT/queue_log
