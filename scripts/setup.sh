#!/usr/bin/env bash
# Installs what contd needs on a fresh Debian 12 machine (as root), builds the
# workspace and makes a busybox rootfs at target/rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v runc >/dev/null 2>&1 || need+=(runc)        # benchmarks compare against it
command -v podman >/dev/null 2>&1 || need+=(podman)    # runtime-core/tests/podman.rs drives contd-runtime
command -v containerd >/dev/null 2>&1 || need+=(containerd)  # runtime-core/tests/containerd.rs: the runc shim drives contd-runtime
command -v crun >/dev/null 2>&1 || need+=(crun)        # bench/runtime.sh compares against it
command -v jq >/dev/null 2>&1 || need+=(jq)            # bench/runtime.sh edits config.json
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v bc >/dev/null 2>&1 || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --workspace --bins --examples --quiet
# contd, contd-monitor and contctl of protocols 1-3, from this repository's
# history: tests/tests/compat.rs takes over their containers.
scripts/old-releases.sh

# A busybox rootfs: the static binary and one symlink per applet.
root=target/rootfs
if [ ! -x "$root/bin/busybox" ]; then
    rm -rf "$root"
    scripts/rootfs.sh "$root"
fi
echo "setup: built target/debug/{contd,contd-monitor,contctl}; rootfs at $root"
