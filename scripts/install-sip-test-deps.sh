#!/usr/bin/env bash
# Installs the real SIP peers the HEP/SIP end-to-end test drives: Kamailio
# (proxy, mirrors every message as HEP via siptrace) and SIPp (callers,
# agents, and the queue platform). Debian packages only.
# Idempotent: does nothing when both binaries are already present.
set -euo pipefail

need=()
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
if [ ${#need[@]} -eq 0 ]; then
    echo "install-sip-test-deps: kamailio and sipp already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-sip-test-deps: not root and no sudo; cannot install ${need[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# The Debian package starts a kamailio service where systemd runs; the test
# runs its own instance, so stop a packaged one if it got started.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kamailio 2>/dev/null; then
    $SUDO systemctl stop kamailio || true
fi
command -v kamailio && kamailio -v | head -1
command -v sipp && sipp -v 2>&1 | head -2 || true
