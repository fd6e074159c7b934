#!/usr/bin/env bash
# Builds the Debian package of contd: the binaries (contd, contd-monitor,
# contctl, contd-runtime, and containerd-shim-contd-v2, a link to
# contd-monitor), the systemd unit, the example configuration as
# /etc/contd/config.toml (a conffile), and man pages generated from the
# binaries' own command-line definitions.
#
#   scripts/package.sh [--profile release|debug] [--out DIR] [--no-build]
#
# Prints the path of the .deb. Needs only dpkg-deb (in every Debian). The
# default profile is release (LTO, the small monitor); --profile debug reuses
# the binaries the test setup built (what the packaging test checks, with
# --no-build: a test runs inside cargo, which holds the build lock).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
out=target/package
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) flags=(--release) ;;
    debug) flags=() ;;
    *) echo "package.sh: --profile is release or debug" >&2; exit 2 ;;
esac
bin=target/$profile
[ "$build" = 0 ] || cargo build --workspace --bins "${flags[@]}" --quiet

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
mkdir -p "$out"
root=$(mktemp -d "${TMPDIR:-/tmp}/contd-pkg.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/contd" \
    "$root/usr/share/man/man1" "$root/usr/share/man/man8" "$root/usr/share/doc/contd"
for b in contd contd-monitor contctl contd-runtime; do
    install -m 0755 "$bin/$b" "$root/usr/bin/$b"
done
strip --strip-unneeded "$root"/usr/bin/*
# containerd's shim for io.containerd.contd.v2 is contd-monitor itself.
ln -s contd-monitor "$root/usr/bin/containerd-shim-contd-v2"
install -m 0644 contrib/systemd/contd.service "$root/lib/systemd/system/contd.service"
install -m 0644 contrib/config.toml "$root/etc/contd/config.toml"
"$bin/contd" --generate man | gzip -9n > "$root/usr/share/man/man8/contd.8.gz"
"$bin/contctl" generate man | gzip -9n > "$root/usr/share/man/man1/contctl.1.gz"
chmod 0644 "$root"/usr/share/man/man*/*.gz
gzip -9nc README.md > "$root/usr/share/doc/contd/README.md.gz"
gzip -9nc docs/architecture.md > "$root/usr/share/doc/contd/architecture.md.gz"
cat > "$root/usr/share/doc/contd/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: contd
License: Apache-2.0

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

echo /etc/contd/config.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: contd
Version: $version
Architecture: $arch
Maintainer: contd developers <contd@example.invalid>
Installed-Size: $size
Depends: libc6, libseccomp2
Section: admin
Priority: optional
Description: container supervisor whose restarts never stop a container
 contd runs containers from a root filesystem, each under a small monitor
 process that outlives contd: stopping, killing or upgrading contd loses no
 container, exit code, log line or terminal session. contctl is its
 docker-like client; contd-runtime is a runc-compatible OCI runtime.
EOF
# Like debhelper's snippets: systemd learns of the unit; nothing is started.
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

deb="$out/contd_${version}_${arch}.deb"
# xz for the release package; a quick gzip for the debug one (tests).
if [ "$profile" = release ]; then compress=(-Zxz); else compress=(-Zgzip -z1); fi
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"
