#!/usr/bin/env bash
# Time from `contctl run -d` until the container runs, against `runc run -d`
# on the same busybox rootfs: N runs each, interleaved, medians and ratio.
# Both start `sleep 1000` detached; both are removed between runs (not timed).
# Needs root. Usage: bench/run-latency.sh [N]  (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
scripts/setup.sh >/dev/null
cargo build --workspace --release --quiet
bin=target/release
work=$(mktemp -d /tmp/contd-bench.XXXXXX)
sock=$work/contd.sock
rootfs=$PWD/target/rootfs
"$bin/contd" --state-dir "$work/state" --log-dir "$work/logs" --socket "$sock" \
    --cgroup-parent contd-bench 2>"$work/contd.log" &
contd_pid=$!
cleanup() {
    runc --root "$work/runc" delete -f bench-runc >/dev/null 2>&1 || true
    "$bin/contctl" --socket "$sock" rm -f bench >/dev/null 2>&1 || true
    kill "$contd_pid" 2>/dev/null || true; wait 2>/dev/null || true
    rm -rf "$work"
    # Empty parent cgroups (<parent>/<ns>) go too.
    find /sys/fs/cgroup/*/contd-bench -depth -type d -exec rmdir {} + 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

# A runc bundle with the same rootfs and a spec close to contd's defaults.
mkdir -p "$work/bundle"
( cd "$work/bundle" && runc spec )
python3 - "$work/bundle/config.json" "$rootfs" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": root, "readonly": False}
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
c["linux"]["cgroupsPath"] = "contd-bench/runc"
json.dump(c, open(p, "w"))
PY

now() { date +%s%N; }
ours=(); theirs=()
for i in $(seq "$N"); do
    t0=$(now); "$bin/contctl" --socket "$sock" run -d --name bench "$rootfs" sleep 1000 >/dev/null; t1=$(now)
    ours+=($(( (t1 - t0) / 1000 )))
    "$bin/contctl" --socket "$sock" rm -f bench >/dev/null
    t0=$(now); runc --root "$work/runc" run -d --bundle "$work/bundle" bench-runc >/dev/null 2>&1 </dev/null; t1=$(now)
    theirs+=($(( (t1 - t0) / 1000 )))
    runc --root "$work/runc" delete -f bench-runc >/dev/null
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_ours=$(median "${ours[@]}"); m_runc=$(median "${theirs[@]}")
echo "runs each (interleaved): $N"
printf 'contctl run -d  median %8.2f ms   (min %.2f, max %.2f)\n' "$(echo "$m_ours/1000" | bc -l)" \
    "$(echo "$(printf '%s\n' "${ours[@]}" | sort -n | head -1)/1000" | bc -l)" \
    "$(echo "$(printf '%s\n' "${ours[@]}" | sort -n | tail -1)/1000" | bc -l)"
printf 'runc run -d     median %8.2f ms   (min %.2f, max %.2f)\n' "$(echo "$m_runc/1000" | bc -l)" \
    "$(echo "$(printf '%s\n' "${theirs[@]}" | sort -n | head -1)/1000" | bc -l)" \
    "$(echo "$(printf '%s\n' "${theirs[@]}" | sort -n | tail -1)/1000" | bc -l)"
printf 'ratio contd/runc: %.2f\n' "$(echo "$m_ours/$m_runc" | bc -l)"
