#!/usr/bin/env bash
# Installs what the packaging tests need (idempotent): dpkg-deb builds the
# package, systemd-analyze verifies and scores the unit, adduser creates the
# service user when the package is installed.
set -euo pipefail
need=()
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v adduser >/dev/null 2>&1 || need+=(adduser)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-ops-deps: dpkg-deb, systemd-analyze, adduser and runuser are present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-ops-deps: installing ${need[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-ops-deps: done"
