#!/usr/bin/env bash
# A/B of two contd builds on the same machine, in one run: `contctl run -d`
# latency and `rm -f` rate, rounds interleaved (A, B, A, B, ...), each
# round's median, then the median of the rounds per build.
#
#   bench/ab.sh A_BIN_DIR B_BIN_DIR [ROUNDS] [N]
#
# Each BIN_DIR holds contd, contd-monitor and contctl (e.g. target/release of
# two worktrees: git worktree add /tmp/a <commit>; CARGO_TARGET_DIR=/tmp/a/target
# cargo build --release -p supervisor -p contd-monitor -p contctl). State dirs
# are on a tmpfs, as /run is on a node; the rootfs is target/rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/ab.sh A_BIN_DIR B_BIN_DIR [ROUNDS] [N]" >&2; exit 2; }
a=$(cd "$1" && pwd) b=$(cd "$2" && pwd)
rounds=${3:-8} n=${4:-21}
rootfs=$PWD/target/rootfs
[ -x "$rootfs/bin/busybox" ] || { echo "ab.sh: no rootfs: run scripts/setup.sh" >&2; exit 1; }
for d in "$a" "$b"; do
    for x in contd contd-monitor contctl; do
        [ -x "$d/$x" ] || { echo "ab.sh: $d/$x missing" >&2; exit 1; }
    done
done

work=$(mktemp -d /tmp/contd-ab.XXXXXX)
mount -t tmpfs tmpfs "$work"
contd_pid=
cleanup() {
    [ -n "$contd_pid" ] && kill "$contd_pid" 2>/dev/null && wait "$contd_pid" 2>/dev/null || true
    pkill -9 -f "contd-monitor --state-dir $work" 2>/dev/null || true
    find /sys/fs/cgroup/*/contd-ab /sys/fs/cgroup/*/contd-ab-monitors -depth -type d \
        -exec rmdir {} + 2>/dev/null || true
    umount "$work" 2>/dev/null && rmdir "$work"
}
trap cleanup EXIT

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# One round of build $1: prints "<run -d median us> <rm -f per second>".
round() {
    local bin=$1 sock=$work/c.sock
    "$bin/contd" --state-dir "$work/state" --log-dir "$work/logs" --socket "$sock" \
        --cgroup-parent contd-ab --monitor "$bin/contd-monitor" 2>>"$work/contd.log" &
    contd_pid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    local lat
    lat=$(for i in $(seq "$n"); do
        s=$(date +%s%N)
        "$bin/contctl" --socket "$sock" run -d --name "c$i" "$rootfs" sleep 100 >/dev/null
        e=$(date +%s%N)
        echo $(( (e - s) / 1000 ))
        sleep 0.1
    done | median)
    local s e
    s=$(date +%s%N)
    for i in $(seq "$n"); do "$bin/contctl" --socket "$sock" rm -f "c$i" >/dev/null; done
    e=$(date +%s%N)
    kill "$contd_pid"; wait "$contd_pid" 2>/dev/null || true
    contd_pid=
    echo "$lat $(echo "scale=1; $n * 1000000000 / ($e - $s)" | bc)"
}

declare -a la lb ra rb
for r in $(seq "$rounds"); do
    read -r l x < <(round "$a"); la+=("$l"); ra+=("$x")
    read -r l x < <(round "$b"); lb+=("$l"); rb+=("$x")
    echo "round $r: A run -d ${la[-1]} us, rm ${ra[-1]}/s | B run -d ${lb[-1]} us, rm ${rb[-1]}/s"
done
ma=$(printf '%s\n' "${la[@]}" | median) mb=$(printf '%s\n' "${lb[@]}" | median)
echo
echo "A: $a"
echo "B: $b"
echo "run -d latency, median of $rounds round medians ($n runs each): A $((ma / 1000)).$(( (ma % 1000) / 100 )) ms, B $((mb / 1000)).$(( (mb % 1000) / 100 )) ms, B/A $(echo "scale=2; $mb / $ma" | bc)"
echo "rm -f, median of $rounds rounds: A $(printf '%s\n' "${ra[@]}" | median)/s, B $(printf '%s\n' "${rb[@]}" | median)/s"
