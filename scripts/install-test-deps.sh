#!/usr/bin/env bash
# Installs what the publishing tests need (idempotent): Prometheus (the
# server and promtool) and Chromium (headless, driven over the DevTools
# protocol). Skips everything when both are already present.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# A CJK font, so the Chinese wall's screenshot (docs/wall-zh-CN.png) shows
# glyphs, not boxes (the Chromium tests read text and pass without it).
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: prometheus, promtool, chromium and a CJK font are present"
  exit 0
fi
# Deduplicate.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing ${need[*]}"
$SUDO apt-get update -qq
# --no-install-recommends keeps Chromium's footprint down; fonts-liberation
# gives the wall readable glyphs in screenshots.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-liberation >/dev/null
# The Debian prometheus package starts a service on :9090 where systemd
# runs; tests start their own server on a free port and never use it.
command -v promtool >/dev/null && command -v chromium >/dev/null
echo "install-test-deps: done"
