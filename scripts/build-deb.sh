#!/usr/bin/env bash
# Builds the Debian package of acdmon with dpkg-deb (Debian's own tool, on
# every Debian machine: nothing to compile or fetch in CI, unlike cargo-deb).
#
# Usage: scripts/build-deb.sh [--profile release|debug] [--binary PATH] [--out DIR] [--fast]
#   --profile  cargo profile to build (default release)
#   --binary   package this binary instead of building one (tests use it)
#   --out      where to write acdmon_<version>_<arch>.deb (default target/debian)
#   --fast     gzip -1 instead of xz (tests: xz of a debug binary takes a minute)
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
binary=""
out=target/debian
compress=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  if [ "$profile" = release ]; then
    cargo build --locked --release >&2
    binary=target/release/acdmon
  else
    cargo build --locked --profile "$profile" >&2
    binary="target/$profile/acdmon"
    [ "$profile" = dev ] && binary=target/debug/acdmon
  fi
fi
[ -x "$binary" ] || { echo "build-deb: no binary at $binary" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/acdmon_${version}_${arch}"

install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/acdmon" \
  "$root/lib/systemd/system" "$root/usr/share/acdmon" "$root/usr/share/doc/acdmon"
install -m 0755 "$binary" "$root/usr/bin/acdmon"
strip --strip-debug "$root/usr/bin/acdmon" 2>/dev/null || true
# The annotated example is the packaged config, with storage where the unit
# lets the daemon write.
sed 's|^path = "data/acdmon.sqlite"|path = "/var/lib/acdmon/acdmon.sqlite"|' \
  config/example.toml > "$root/etc/acdmon/acdmon.toml"
grep -q '^path = "/var/lib/acdmon/acdmon.sqlite"' "$root/etc/acdmon/acdmon.toml" \
  || { echo "build-deb: could not set the storage path in the packaged config" >&2; exit 1; }
chmod 0644 "$root/etc/acdmon/acdmon.toml"
install -m 0640 packaging/debian/acdmon.env "$root/etc/acdmon/acdmon.env"
install -m 0644 packaging/acdmon.service "$root/lib/systemd/system/acdmon.service"
install -m 0644 dashboards/grafana-acdmon.json dashboards/alerts.yml \
  dashboards/prometheus.yml "$root/usr/share/acdmon/"
install -m 0644 README.md "$root/usr/share/doc/acdmon/README.md"
install -m 0644 CHANGELOG.md "$root/usr/share/doc/acdmon/CHANGELOG.md"
cp -r docs "$root/usr/share/doc/acdmon/docs"
find "$root/usr/share/doc/acdmon/docs" -type f -exec chmod 0644 {} +
cat > "$root/usr/share/doc/acdmon/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: acdmon
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY
for s in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
printf '/etc/acdmon/acdmon.toml\n/etc/acdmon/acdmon.env\n' > "$root/DEBIAN/conffiles"
size_kb="$(du -sk "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CTRL
Package: acdmon
Version: $version
Architecture: $arch
Maintainer: acdmon developers <acdmon@localhost>
Installed-Size: $size_kb
Depends: libc6 (>= 2.34), adduser
Section: net
Priority: optional
Homepage: https://github.com/acdmon/acdmon
Description: real-time ACD/queue monitor for contact centres
 acdmon takes call and agent events from Asterisk (AMI, queue_log),
 FreeSWITCH mod_callcenter, SIP mirrored as HEP or a JSON-lines feed, keeps
 every queue's and agent's state live, serves a wall, a WebSocket feed, a
 REST API and Prometheus metrics, and carries out a staged escalation plan
 through the phone system's CTI.
CTRL

mkdir -p "$out"
deb="$out/acdmon_${version}_${arch}.deb"
# Root-owned files whoever builds it (no fakeroot needed).
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
