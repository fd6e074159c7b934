#!/usr/bin/env bash
# Load waves: W waves of N containers started by 8 concurrent clients, then
# removed by 8 (rm -f), against one contd. After each wave it prints contd's
# RSS and open fds, the monitors and cgroups left: they must stay flat (a
# leak shows as a climb from wave to wave).
# Needs root. Usage: bench/waves.sh   (W=5 N=200)
# CONTD_BIN_DIR=DIR takes contd, contd-monitor and contctl from DIR.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
W=${W:-5} N=${N:-200}
die() { echo "waves.sh: $*" >&2; exit 1; }
for v in W N; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"; done
[ "$(id -u)" = 0 ] || die "needs root"
if [ -n "${CONTD_BIN_DIR:-}" ]; then
    bin=$(cd "$CONTD_BIN_DIR" && pwd)
else
    cargo build --release --quiet -p supervisor -p contd-monitor -p contctl
    bin=$PWD/target/release
fi
[ -x target/rootfs/bin/busybox ] || scripts/rootfs.sh target/rootfs
rootfs=$PWD/target/rootfs
work=$(mktemp -d /tmp/contd-waves.XXXXXX)
cg=${work##*/}
mount -t tmpfs -o mode=0755 contd-waves "$work"
sock=$work/contd.sock
"$bin/contd" --state-dir "$work/state" --log-dir "$work/logs" --socket "$sock" \
    --monitor "$bin/contd-monitor" --cgroup-parent "$cg" 2>"$work/contd.log" &
pid=$!
cleanup() {
    set +e
    for d in "$work"/state/*/*/; do [ -d "$d" ] && basename "$d"; done |
        xargs -r -P 8 -n 1 "$bin/contctl" --socket "$sock" rm -f >/dev/null 2>&1
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    find /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/*/"$cg-monitors" -depth -type d -exec rmdir {} + 2>/dev/null
    umount "$work" && rmdir "$work"
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
ctl() { "$bin/contctl" --socket "$sock" "$@"; }
per=$(( (N + 7) / 8 ))
figures() {
    local rss fds mons cgs
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    mons=$(pgrep -fc -- "contd-monitor --state-dir $work/" || true)
    cgs=$( (find /sys/fs/cgroup/memory/"$cg" -mindepth 2 -type d 2>/dev/null || true) | wc -l)
    printf '%-10s contd RSS %6d kB, fds %4d; monitors %4d, container cgroups %4d\n' \
        "$1" "$rss" "$fds" "$mons" "$cgs"
}
figures "start"
for w in $(seq "$W"); do
    t0=$EPOCHREALTIME
    for k in $(seq 8); do
        ( for j in $(seq "$per"); do ctl run -d --name "w$w-$k-$j" "$rootfs" sleep 1000 >/dev/null; done ) &
    done
    wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
    n=$(ctl ps | tail -n +2 | wc -l)
    [ "$n" = $((per * 8)) ] || die "wave $w: $n running, expected $((per * 8))"
    figures "wave $w up"
    for k in $(seq 8); do
        ( for j in $(seq "$per"); do ctl rm -f "w$w-$k-$j" >/dev/null; done ) &
    done
    wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
    t1=$EPOCHREALTIME
    [ "$(ctl ps -a | tail -n +2 | wc -l)" = 0 ] || die "wave $w: containers left after rm -f"
    figures "wave $w down"
    awk -v a="$t0" -v b="$t1" -v n=$((per * 8)) 'BEGIN {printf "           %d containers up and down in %.1f s\n", n, b - a}'
done
