#!/usr/bin/env bash
# Builds a busybox rootfs at DIR: the static busybox and one symlink per
# applet, plus a root entry in /etc/passwd and /etc/group.
# Usage: scripts/rootfs.sh DIR   (DIR must not hold a rootfs yet)
set -euo pipefail
root=${1:?usage: scripts/rootfs.sh DIR}
bb=$(command -v busybox) || { echo "rootfs.sh: no busybox (apt-get install busybox-static)" >&2; exit 1; }
! ldd "$bb" >/dev/null 2>&1 || { echo "rootfs.sh: $bb is dynamically linked; install busybox-static" >&2; exit 1; }
mkdir -p "$root"/{bin,proc,dev,sys,tmp,etc,root}
cp "$bb" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
