#!/bin/sh
# Records one scenario of drive.py from a real FreeSWITCH 1.10.12 (see
# README.md): fresh switch (empty database, so its own counters start at 0),
# esl_tee.py on :8022 in front of its event socket, `acdmon run` connected
# through the tee, the scenario driven over a second ESL connection, then
# FreeSWITCH's own figures and the live daemon's API saved beside the
# capture.
#   record.sh SCENARIO CONFIG   (FS, FSRUN, ACDMON from the environment)
set -u
trap 'kill ${D:-} ${TEE:-} 2>/dev/null' EXIT
S=$1; CFG=$2
HERE=$(cd "$(dirname "$0")" && pwd)
FSRUN=${FSRUN:-/work/build/fsrun}; ACDMON=${ACDMON:-acdmon}
OUT=$FSRUN/$S; rm -rf "$OUT"; mkdir -p "$OUT"
python3 - <<PY || true
import sys; sys.path.insert(0, "$HERE"); import drive
try: drive.Esl().api("fsctl shutdown")
except Exception: pass
PY
P=$FSRUN/run/freeswitch.pid
while [ -s "$P" ] && kill -0 "$(cat "$P")" 2>/dev/null; do sleep 1; done
rm -f "$FSRUN"/db/*
"$FSRUN/start-fs.sh" > "$OUT/fs.out" 2>&1 &
until python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8021)).close()' 2>/dev/null; do sleep 1; done
sleep 2
python3 "$HERE/esl_tee.py" 8022 127.0.0.1:8021 "$OUT/$S.esl" 8122 & TEE=$!
sleep 1
rm -f /tmp/acdmon-esl-real-audit.sqlite*
RUST_LOG=info "$ACDMON" run --config "$CFG" > "$OUT/acdmon.log" 2>&1 & D=$!
sleep 3
python3 "$HERE/drive.py" "$S" 8122 | tee "$OUT/drive.log"
curl -s localhost:18080/api/v1/queues > "$OUT/live-queues-at-end.json"
sleep ${SETTLE:-10}   # wrap-ups still running end in the live daemon
curl -s localhost:18080/api/v1/queues > "$OUT/live-queues.json"
curl -s localhost:18080/api/v1/agents > "$OUT/live-agents.json"
curl -s -H 'Authorization: Bearer boss' localhost:18080/api/v1/escalations > "$OUT/live-escalations.json"
python3 - <<PY > "$OUT/freeswitch-own.txt"
import sys; sys.path.insert(0, "$HERE"); import drive
fs = drive.Esl()
print(fs.api("callcenter_config queue list"))
print(fs.api("callcenter_config queue list agents support@default"))
print(fs.api("callcenter_config queue list members support@default"))
print(fs.api("callcenter_config queue list tiers support@default"))
PY
echo "recorded $OUT/$S.esl"
