#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while.
#   scripts/fuzz.sh <target> [seconds]     targets: esl_parser ami_parser ami_session queue_log_line hep_packet sip_message json_ingest
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
# Seeds the corpus from the recorded transcripts in tests/data.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh <target> [seconds]}
secs=${2:-60}
cd "$(dirname "$0")/.."
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
corpus=fuzz/corpus/$target
mkdir -p "$corpus"
case $target in
  ami_parser|ami_session)
    for f in tests/data/ami/*.ami; do
      # The first 8 KiB of each transcript.
      head -c 8192 "$f" > "$corpus/seed-$(basename "$f")"
    done ;;
  esl_parser)
    for f in tests/data/esl/*.esl; do
      head -c 16384 "$f" > "$corpus/seed-$(basename "$f")"
    done ;;
  queue_log_line)
    for f in tests/data/queue_log/*; do cp "$f" "$corpus/seed-$(basename "$f")"; done ;;
  hep_packet)
    # Each packet of the recorded Kamailio capture (HEPv3, back to back).
    python3 - "$corpus" tests/data/hep/kamailio_calls.hep <<'PY'
import sys
out, src = sys.argv[1], open(sys.argv[2], "rb").read()
i = n = 0
while i + 6 <= len(src):
    ln = int.from_bytes(src[i + 4:i + 6], "big")
    if ln < 6:
        break
    open(f"{out}/seed-kamailio-{n:03}", "wb").write(src[i:i + ln])
    i += ln
    n += 1
PY
    # Real HEPv2 datagrams.
    for f in tests/data/hep/kamailio_v2/*.hep; do cp "$f" "$corpus/seed-v2-$(basename "$f")"; done
    ;;
  sip_message)
    for f in tests/data/sip/messages/*.sip; do
      sed 's/$/\r/' "$f" > "$corpus/seed-$(basename "$f")"
    done ;;
  json_ingest)
    # The first byte picks the chunk size; the rest is a body.
    { printf '\x07'; head -c 8192 tests/data/day.jsonl; } > "$corpus/seed-day"
    for ts in 9223372036854775807 -1 1e15 1e308 '"9999-12-31T23:59:59Z"' '"+999999-01-01T00:00:00Z"'; do
      printf '\x03{"ts":%s,"type":"agent_state","agent":"x","state":"available"}\n' "$ts" \
        > "$corpus/seed-ts-$(echo "$ts" | tr -dc '0-9a-zA-Z')"
    done ;;
esac
dict=()
if [ -f "fuzz/dict/$target.dict" ]; then dict=("-dict=dict/$target.dict"); fi
cd fuzz
exec cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=16384 "${dict[@]}"
