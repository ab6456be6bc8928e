#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine, then runs them.
# Usage: scripts/test.sh            (what CI runs, through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use (Prometheus/promtool, Chromium, Kamailio,
# SIPp): each install script is idempotent and skips what is present.
for s in scripts/install-*.sh; do
  [ -f "$s" ] || continue
  echo "== $s"
  bash "$s"
done

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
# The fuzz targets (fuzz/, its own crate) must keep building: `cargo fuzz`
# needs nightly, `cargo check` of the same crate does not. Not --locked:
# fuzz/Cargo.lock follows the main crate's dependencies, and a dependency
# added to acdmon would otherwise fail here until that second lock file is
# refreshed by hand. The shared target dir reuses clippy's dependencies.
echo "== cargo check (fuzz targets)"
cargo check --manifest-path fuzz/Cargo.toml --target-dir target
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (the last cargo line is the
# doc-tests', which has none).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
