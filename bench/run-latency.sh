#!/usr/bin/env bash
# The whole stack (contctl → contd → contd-monitor → container) against
# runc on the same busybox rootfs, N runs each, interleaved, medians:
#   run -d   `contctl run -d` until the container runs, vs `runc run -d`;
#            both start `sleep 1000` and are removed between runs (untimed)
#   run      `contctl run` of /bin/true in the foreground until it exited
#            (contd's secure default spec: moby's seccomp profile), vs
#            `runc run` of the secure default spec `contd-runtime spec`
#            writes (the same seccomp profile)
# Needs root. Usage: bench/run-latency.sh [N]  (default 20)
# CONTD_BIN_DIR=DIR takes contd, contctl, contd-monitor and contd-runtime
# from DIR instead of building them (e.g. an older build, for an A/B).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
scripts/setup.sh >/dev/null
if [ -n "${CONTD_BIN_DIR:-}" ]; then
    bin=$CONTD_BIN_DIR
else
    cargo build --workspace --release --quiet
    bin=target/release
fi
work=$(mktemp -d /tmp/contd-bench.XXXXXX)
sock=$work/contd.sock
rootfs=$PWD/target/rootfs
"$bin/contd" --state-dir "$work/state" --log-dir "$work/logs" --socket "$sock" \
    --monitor "$bin/contd-monitor" --cgroup-parent contd-bench 2>"$work/contd.log" &
contd_pid=$!
cleanup() {
    runc --root "$work/runc" delete -f bench-runc >/dev/null 2>&1 || true
    "$bin/contctl" --socket "$sock" rm -f bench >/dev/null 2>&1 || true
    kill "$contd_pid" 2>/dev/null || true; wait 2>/dev/null || true
    rm -rf "$work"
    # Empty parent cgroups (<parent>/<ns>) go too.
    find /sys/fs/cgroup/*/contd-bench /sys/fs/cgroup/*/contd-bench-monitors -depth -type d -exec rmdir {} + 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

# runc's bundles: the same rootfs; `runc spec` for run -d, contd-runtime's
# secure default spec for the foreground run.
mkdir -p "$work/bundle" "$work/secure"
( cd "$work/bundle" && runc spec )
"$bin/contd-runtime" spec --bundle "$work/secure"
python3 - "$work" "$rootfs" <<'PY'
import json, sys
work, root = sys.argv[1], sys.argv[2]
for name, args in (("bundle", ["sleep", "1000"]), ("secure", ["/bin/true"])):
    p = f"{work}/{name}/config.json"
    c = json.load(open(p))
    c["root"] = {"path": root, "readonly": False}
    c["process"]["terminal"] = False
    c["process"]["args"] = args
    c["linux"]["cgroupsPath"] = f"contd-bench/runc-{name}"
    json.dump(c, open(p, "w"))
PY

now() { date +%s%N; }
c="$bin/contctl --socket $sock"
ours=(); theirs=(); ours_fg=(); theirs_fg=()
for i in $(seq "$N"); do
    t0=$(now); $c run -d --name bench "$rootfs" sleep 1000 >/dev/null; t1=$(now)
    ours+=($(( (t1 - t0) / 1000 )))
    $c rm -f bench >/dev/null
    t0=$(now); runc --root "$work/runc" run -d --bundle "$work/bundle" bench-runc >/dev/null 2>&1 </dev/null; t1=$(now)
    theirs+=($(( (t1 - t0) / 1000 )))
    runc --root "$work/runc" delete -f bench-runc >/dev/null
    t0=$(now); $c run --name bench "$rootfs" /bin/true >/dev/null; t1=$(now)
    ours_fg+=($(( (t1 - t0) / 1000 )))
    $c rm -f bench >/dev/null
    t0=$(now); runc --root "$work/runc" run --bundle "$work/secure" bench-runc >/dev/null 2>&1 </dev/null; t1=$(now)
    theirs_fg+=($(( (t1 - t0) / 1000 )))
done
ms() { echo "$1/1000" | bc -l; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
row() { # label values...
    local label=$1; shift
    printf '%-34s median %8.2f ms   (min %.2f, max %.2f)\n' "$label" "$(ms "$(median "$@")")" \
        "$(ms "$(printf '%s\n' "$@" | sort -n | head -1)")" "$(ms "$(printf '%s\n' "$@" | sort -n | tail -1)")"
}
echo "runs each (interleaved): $N; binaries: $bin"
row "contctl run -d" "${ours[@]}"
row "runc run -d" "${theirs[@]}"
printf 'ratio contd/runc: %.2f\n' "$(echo "$(median "${ours[@]}")/$(median "${theirs[@]}")" | bc -l)"
row "contctl run /bin/true (secure)" "${ours_fg[@]}"
row "runc run /bin/true (secure)" "${theirs_fg[@]}"
printf 'ratio contd/runc: %.2f\n' "$(echo "$(median "${ours_fg[@]}")/$(median "${theirs_fg[@]}")" | bc -l)"
