#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while.
# Usage: scripts/fuzz.sh <target> <seconds> [libFuzzer flags...]
#        e.g. scripts/fuzz.sh esl_parser 60 -max_len=4096
# Installs cargo-fuzz if missing; needs the nightly toolchain. Seeds the
# corpus from tests/data/<adapter>/ the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh <target> <seconds>}
secs=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
corpus="fuzz/corpus/$target"
if [ ! -d "$corpus" ]; then
  mkdir -p "$corpus"
  seeds="tests/data/${target%%_*}"
  if [ -d "$seeds" ]; then
    find "$seeds" -maxdepth 1 -type f ! -name '*.py' ! -name '*.toml' -exec cp {} "$corpus/" \;
  fi
fi
cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$secs" "$@"
