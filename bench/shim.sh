#!/usr/bin/env bash
# contd-monitor as containerd's shim (io.containerd.contd.v2) against
# containerd's own runc shim (io.containerd.runc.v2, runc), under one private
# containerd, on the same busybox rootfs, in one run:
#
#   latency   `ctr run -d` of `sleep 1000` until ctr returns (the task
#             runs); L runs per side, interleaved, median and ratio.
#   memory    N detached `sleep 1000` tasks per side, all running at once;
#             every shim process's Rss, Pss and Private_Dirty from
#             /proc/PID/smaps_rollup (the runc side: every
#             containerd-shim-runc-v2 process of this containerd), summed
#             per side and divided by N: memory per container. Also the
#             shims' thread counts. Measured SETTLE s (default 1) after the
#             last task started (contd-monitor gives back what setting up
#             touched 0.5 s after it).
#
# The tasks, containerd, its shims, cgroups and the temp dir are removed at
# exit, failure included, then checked for leftovers (exit 1 if any).
#
# Needs root, containerd, ctr, runc. Usage: bench/shim.sh
# N=20 L=20 SETTLE=1 set the sizes; CONTD_BIN_DIR=DIR (holding contd-monitor)
# skips `cargo build`.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${N:-20} L=${L:-20} SETTLE=${SETTLE:-1}
die() { echo "shim.sh: $*" >&2; exit 1; }
for v in N L; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[ "$(id -u)" = 0 ] || die "needs root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"
for t in containerd ctr runc containerd-shim-runc-v2; do
    command -v "$t" >/dev/null || die "$t not found (scripts/setup.sh --test installs it)"
done
if [ -n "${CONTD_BIN_DIR:-}" ]; then
    bindir=$(cd "$CONTD_BIN_DIR" && pwd) || die "CONTD_BIN_DIR: no such directory"
else
    cargo build --release --quiet -p contd-monitor
    bindir=$PWD/target/release
fi
[ -x "$bindir/contd-monitor" ] || die "contd-monitor not executable in $bindir"

work=$(mktemp -d /tmp/contd-shimbench.XXXXXX)
ns=bench
mkdir -p "$work/bin"
ln -s "$bindir/contd-monitor" "$work/bin/containerd-shim-contd-v2"
rootfs=$PWD/target/rootfs
[ -x "$rootfs/bin/busybox" ] || die "no busybox rootfs at $rootfs (scripts/setup.sh builds it)"
cat > "$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$work/c.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
EOF
PATH=$work/bin:$PATH containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
c() { ctr --address "$work/c.sock" -n "$ns" "$@"; }
ids=()
cleanup() {
    set +e
    for id in "${ids[@]}"; do
        c task kill -s KILL "$id" >/dev/null 2>&1
    done
    for id in "${ids[@]}"; do
        for _ in $(seq 50); do
            c task delete "$id" >/dev/null 2>&1 && break
            sleep 0.05
        done
        c container delete "$id" >/dev/null 2>&1
    done
    kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
    # Shims of this containerd (none should be left).
    left=$(pgrep -f "$work" | grep -v "^$$\$" || true)
    for h in /sys/fs/cgroup/*/; do rmdir "$h$ns"/* "$h$ns" 2>/dev/null; done
    rm -rf "$work"
    if [ -n "$left" ]; then
        echo "shim.sh: leftover processes: $left" >&2
        kill -9 $left 2>/dev/null
        exit 1
    fi
}
trap cleanup EXIT
for _ in $(seq 200); do c version >/dev/null 2>&1 && break; sleep 0.05; done
c version >/dev/null 2>&1 || die "containerd did not start: $(tail -5 "$work/containerd.log")"

runtime_of() { [ "$1" = contd ] && echo io.containerd.contd.v2 || echo io.containerd.runc.v2; }
run_d() {   # side id: starts a detached sleep 1000
    c run -d --runtime "$(runtime_of "$1")" --rootfs "$rootfs" "$2" /bin/sleep 1000 >/dev/null
    ids+=("$2")
}
stop() {    # id
    c task kill -s KILL "$1" >/dev/null 2>&1 || true
    for _ in $(seq 100); do c task delete "$1" >/dev/null 2>&1 && break; sleep 0.02; done
    c container delete "$1" >/dev/null 2>&1 || true
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "contd-monitor: $bindir/contd-monitor ($(stat -c %s "$bindir/contd-monitor") bytes)"
echo "containerd $(containerd --version | awk '{print $3}'), runc shim $(command -v containerd-shim-runc-v2), N=$N L=$L"
echo

# ---- latency: interleaved, one side then the other, L times ----
declare -A lat
for i in $(seq "$L"); do
    for side in contd runc; do
        id=lat-$side-$i
        t0=$EPOCHREALTIME
        run_d "$side" "$id"
        t1=$EPOCHREALTIME
        lat[$side]+="$(echo "($t1 - $t0) * 1000" | bc -l) "
        stop "$id"
    done
done
ids=()
lc=$(echo "${lat[contd]}" | tr ' ' '\n' | grep . | median)
lr=$(echo "${lat[runc]}" | tr ' ' '\n' | grep . | median)
printf 'ctr run -d latency, median of %d:  contd shim %.1f ms   runc shim %.1f ms   (contd/runc %.2f)\n' \
    "$L" "$lc" "$lr" "$(echo "$lc / $lr" | bc -l)"
echo

# ---- memory: N tasks per side at once ----
for side in contd runc; do
    for i in $(seq "$N"); do run_d "$side" "mem-$side-$i"; done
done
sleep "$SETTLE"
rollup() { awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_Dirty:/ {d = $2}
                END {if (r == "") exit 1; print r, p, d}' "/proc/$1/smaps_rollup"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
last_pss=0
report() {  # side pids...: prints the side's line, sets last_pss
    local side=$1; shift
    local n=$# rss=0 pss=0 dirty=0 thr=0 r p d
    for pid in "$@"; do
        read -r r p d < <(rollup "$pid")
        rss=$((rss + r)) pss=$((pss + p)) dirty=$((dirty + d)) thr=$((thr + $(threads "$pid")))
    done
    printf '%-6s %3d shim processes for %d tasks, per task: Pss %5d kB  Rss %6d kB  Private_Dirty %5d kB  threads %.1f\n' \
        "$side" "$n" "$N" $((pss / N)) $((rss / N)) $((dirty / N)) "$(echo "$thr / $N" | bc -l)"
    last_pss=$((pss / N))
}
contd_pids=()
for i in $(seq "$N"); do
    contd_pids+=("$(cat "$work/state/io.containerd.runtime.v2.task/$ns/mem-contd-$i/monitor.pid")")
done
mapfile -t runc_pids < <(pgrep -f "containerd-shim-runc-v2 -namespace $ns .*-address $work/c.sock")
[ "${#runc_pids[@]}" -ge 1 ] || die "no runc shim found"
report contd "${contd_pids[@]}"; pc=$last_pss
report runc "${runc_pids[@]}"; pr=$last_pss
printf 'Pss per task: contd shim %d kB, runc shim %d kB (contd/runc %.2f)\n' "$pc" "$pr" "$(echo "$pc / $pr" | bc -l)"
