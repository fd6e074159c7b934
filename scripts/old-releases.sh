#!/usr/bin/env bash
# Builds contd, contd-monitor and contctl as they were at the last commit
# of each earlier protocol version, from this repository's own history, into
# target/old/v<N>/: tests/tests/compat.rs runs today's contd against
# containers whose monitors speak protocol 1, 2 and 3.
#   v1: 970ec34 (before "proto v2 and the monitor")
#   v2: 5bcf8d1 (before "proto v3: the log writer's status")
#   v3: 8708569 (before protocol 4)
# Each is built once and kept (a clean checkout builds them in setup).
# Needs the git history (not a shallow clone).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/old
for pair in 1:970ec34 2:5bcf8d1 3:8708569; do
    v=${pair%%:*} rev=${pair#*:}
    bin=$out/v$v
    if [ -x "$bin/contd" ] && [ -x "$bin/contd-monitor" ] && [ -x "$bin/contctl" ]; then
        continue
    fi
    git cat-file -e "$rev^{commit}" 2>/dev/null ||
        { echo "old-releases: commit $rev is not in this clone (a shallow clone?): git fetch --unshallow" >&2; exit 1; }
    echo "old-releases: building protocol $v ($rev)"
    src=$out/src-v$v
    rm -rf "$src" && mkdir -p "$src" "$bin"
    git archive "$rev" | tar -x -m -C "$src"   # -m: sources newer than any shared artifact
    # One target dir for the three: their dependencies are mostly the same.
    CARGO_TARGET_DIR=$PWD/$out/target cargo build --quiet --locked \
        --manifest-path "$src/Cargo.toml" -p supervisor -p contd-monitor -p contctl
    for b in contd contd-monitor contctl; do cp "$out/target/debug/$b" "$bin/$b"; done
    rm -rf "$src"
done
