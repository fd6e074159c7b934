#!/usr/bin/env bash
# Prepares a Debian 12 machine (as root) to build and run contd from this
# source tree: installs the Debian packages it lacks, builds the workspace and
# makes a busybox rootfs at target/rootfs.
#
#   scripts/setup.sh          what running contd needs
#   scripts/setup.sh --test   also what the tests and benchmarks need: runc,
#                             crun, podman, containerd, docker.io (contd is
#                             compared with them and driven by them; none is
#                             started as a service), hyperfine, jq, bc; the
#                             examples; contd's older releases
set -euo pipefail
cd "$(dirname "$0")/.."

test=0
case "${1:-}" in
    --test) test=1 ;;
    "") ;;
    *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

# First, what this script cannot install: a Rust toolchain newer than
# Debian 12's (1.63).
min_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
have_rust=$(rustc --version 2>/dev/null | cut -d' ' -f2 || true)
if [ -z "$have_rust" ] || ! command -v cargo >/dev/null 2>&1 ||
   [ "$(printf '%s\n%s\n' "$min_rust" "$have_rust" | sort -V | head -1)" != "$min_rust" ]; then
    echo "setup: contd needs Rust $min_rust or newer (found: ${have_rust:-none}); Debian's is too old."
    echo "setup: install it with rustup, then run this script again:"
    echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
    exit 1
fi

need=()
# To build: a C toolchain for the linker and libseccomp's headers.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# To run: a busybox rootfs for the first containers.
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
if [ "$test" = 1 ]; then
    command -v runc >/dev/null 2>&1 || need+=(runc)          # benchmarks compare against it
    command -v podman >/dev/null 2>&1 || need+=(podman)      # runtime-core/tests/podman.rs drives contd-runtime
    command -v containerd >/dev/null 2>&1 || need+=(containerd)  # tests/tests/{shim,containerd_runc}.rs drive contd's shim and contd-runtime
    command -v crun >/dev/null 2>&1 || need+=(crun)          # bench/runtime.sh compares against it
    command -v jq >/dev/null 2>&1 || need+=(jq)              # bench/runtime.sh edits config.json
    command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
    command -v bc >/dev/null 2>&1 || need+=(bc)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# tests/tests/docker.rs: Docker Engine with contd-runtime. Without its
# recommends (needrestart, apparmor...): nothing here runs it as a service.
if [ "$test" = 1 ] && ! command -v dockerd >/dev/null 2>&1; then
    echo "setup: installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if [ "$test" = 1 ]; then
    # The tests run the examples (examples/service_manager.rs) too.
    cargo build --workspace --bins --examples --quiet
    # contd, contd-monitor and contctl of protocols 1-3, from this
    # repository's history: tests/tests/compat.rs takes over their containers.
    scripts/old-releases.sh
else
    cargo build --workspace --bins --quiet
fi

# A busybox rootfs: the static binary and one symlink per applet.
root=target/rootfs
if [ ! -x "$root/bin/busybox" ]; then
    rm -rf "$root"
    scripts/rootfs.sh "$root"
fi
echo "setup: built target/debug/{contd,contd-monitor,contctl,contd-runtime}; rootfs at $root"
