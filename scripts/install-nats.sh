#!/usr/bin/env bash
# Installs the NATS server the cluster-mode tests run (idempotent).
#
# Debian's `nats-server` (bookworm: 2.9.10) is enough: cluster mode uses
# JetStream streams with Nats-Msg-Id de-duplication and
# Nats-Expected-Last-Subject-Sequence, ordered pull consumers, and a
# key-value bucket with max_age and revision compare-and-set, all in 2.9.
# acdmon's client (async-nats) is built without its 2.10+ features, so it
# sends nothing a 2.9 server refuses.
set -euo pipefail

if command -v nats-server >/dev/null 2>&1; then
  echo "install-nats: $(nats-server --version) is present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-nats: installing nats-server"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null
# The package enables a system service on :4222 where systemd runs; the
# tests start their own servers on free ports and never use it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true
fi
echo "install-nats: $(nats-server --version)"
