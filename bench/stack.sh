#!/usr/bin/env bash
# The supervisor stack under load: contctl → contd → contd-monitor → container,
# against `runc run -d` (runc alone, no supervisor) and `podman run -d`
# (podman + conmon + runc, cgroupfs manager), all on the same busybox rootfs,
# in one run:
#   latency    `run -d` of `sleep 1000` until the command returns (the
#              container runs); L runs per side, interleaved, median
#   serial     N containers started one after another: starts per second
#   rm         the same N removed one after another (contctl rm -f,
#              runc delete -f, podman rm -f -t 0): removals per second
#   8 clients  N containers started by 8 concurrent clients: starts/s
#              (serial, rm and 8 clients: R rounds, the sides interleaved
#              in each round, the median round reported)
#   adoption   A running containers; contd is SIGKILLed and started again;
#              the time from its exec until `contctl ps` lists all A
#              running, and contd's RSS then (VmRSS, and VmHWM: its peak)
# Every figure is printed with its ratio to the others. runc runs `runc spec`'s
# default config (no seccomp filter); contd runs its secure default (moby's
# seccomp profile, masked paths, no new privileges), podman its own.
# Containers, contd, monitors, cgroups and the temp dir are removed at exit,
# failure included, then checked for leftovers (exit 1 if any).
#
# Needs root, podman, conmon, runc. Usage: bench/stack.sh
# N=100 L=20 R=3 A=1000 set the sizes; CONTD_BIN_DIR=DIR (holding contd,
# contd-monitor, contctl) skips `cargo build`, e.g. an older build for an A/B.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${N:-100} L=${L:-20} R=${R:-3} A=${A:-1000}
die() { echo "stack.sh: $*" >&2; exit 1; }
for v in N L R A; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[ "$(id -u)" = 0 ] || die "needs root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"
for t in podman conmon runc pgrep; do
    command -v "$t" >/dev/null || die "$t not found (scripts/setup.sh installs it)"
done
runc=$(command -v runc)
# contd keeps one connection per monitor, plus a few.
[ "$(ulimit -n)" -gt $((A + 64)) ] || ulimit -n $((A + 1024)) 2>/dev/null ||
    die "open files limit $(ulimit -n) is too low for A=$A containers"

if [ -n "${CONTD_BIN_DIR:-}" ]; then
    bindir=$(cd "$CONTD_BIN_DIR" && pwd) || die "CONTD_BIN_DIR: no such directory: $CONTD_BIN_DIR"
else
    cargo build --release --quiet -p supervisor -p contd-monitor -p contctl
    bindir=$PWD/target/release
fi
for b in contd contd-monitor contctl; do
    [ -x "$bindir/$b" ] || die "$b not executable in $bindir"
done

work=$(mktemp -d /tmp/contd-stack.XXXXXX)
tag=${work##*/}
cg_contd=$tag-contd cg_runc=$tag-runc cg_podman=$tag-podman
# Runtime state lives on a tmpfs, as /run does on a node: the state dirs,
# sockets, runc's --root and podman's --runroot. Logs and podman's storage
# stay on the disk $work is on.
run=$work/run
state=$run/state sock=$run/contd.sock rootfs=$work/rootfs
contd_pid=

ctl() { "$bindir/contctl" --socket "$sock" "$@"; }
pod() {
    podman --root "$work/podman/root" --runroot "$run/podman" --tmpdir "$run/podman-tmp" \
        --runtime "$runc" --cgroup-manager=cgroupfs --events-backend=file "$@"
}
# --ulimit: without CAP_SYS_RESOURCE podman's default limits cannot be set.
prun=(run -d --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none
      --cgroup-parent "/$cg_podman")
rc_() { "$runc" --root "$run/runc" "$@"; }

stragglers() {   # processes this run may have left
    {
        pgrep -f -- "$work" || true
        for f in /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_runc" /sys/fs/cgroup/*/"$cg_podman"; do
            [ -d "$f" ] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
        done
    } | sort -un | while read -r p; do
        [ -n "$p" ] && [ "$p" != $$ ] && [ -e "/proc/$p" ] &&
            ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && echo "$p"
    done
}
start_contd() {
    "$bindir/contd" --state-dir "$state" --log-dir "$work/logs" --socket "$sock" \
        --cgroup-parent "$cg_contd" --monitor "$bindir/contd-monitor" 2>>"$work/contd.log" &
    contd_pid=$!
}
wait_contd() {   # until the api answers
    local i
    for i in $(seq 400); do
        [ -S "$sock" ] && ctl ps >/dev/null 2>&1 && return 0
        kill -0 "$contd_pid" 2>/dev/null || die "contd exited: $(tail -n 5 "$work/contd.log")"
        sleep 0.025
    done
    die "contd did not answer on $sock within 10 s"
}
# Removes every container of every side, 8 at a time.
remove_all() {
    local d
    if [ -n "$contd_pid" ] && kill -0 "$contd_pid" 2>/dev/null; then
        for d in "$state"/*/*/; do [ ! -d "$d" ] || basename "$d"; done |
            xargs -r -P 8 -n 1 "$bindir/contctl" --socket "$sock" rm -f >/dev/null 2>&1
    fi
    if [ -d "$run/runc" ]; then
        rc_ list -q 2>/dev/null | xargs -r -P 8 -n 1 "$runc" --root "$run/runc" delete -f >/dev/null 2>&1
    fi
    [ -d "$work/podman/root" ] && pod rm -f -t 0 -a >/dev/null 2>&1
    return 0
}
cleanup() {
    local rc=$? left i
    set +eu
    remove_all
    if [ -n "$contd_pid" ]; then kill "$contd_pid" 2>/dev/null; wait "$contd_pid" 2>/dev/null; fi
    for i in $(seq 100); do [ -z "$(stragglers)" ] && break; sleep 0.1; done
    left=$(stragglers)
    if [ -n "$left" ]; then
        echo "stack.sh: killing $(wc -w <<<"$left") leftover processes, e.g.:" >&2
        for i in $(head -n 5 <<<"$left"); do
            echo "    $i $(tr '\0' ' ' <"/proc/$i/cmdline" 2>/dev/null | head -c 200)" >&2
        done
        kill -9 $left 2>/dev/null; sleep 0.5; rc=1
    fi
    if [ "$rc" != 0 ] && [ -s "$work/contd.log" ]; then
        echo "stack.sh: last lines of contd's stderr:" >&2; tail -n 5 "$work/contd.log" | sed 's/^/    /' >&2
    fi
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo |
        sort -r | while read -r d; do umount -l "$d" || echo "stack.sh: cannot unmount $d" >&2; done
    left=$(find /sys/fs/cgroup/*/"$cg_contd" -mindepth 2 -type d 2>/dev/null
           find /sys/fs/cgroup/*/"$cg_runc" -mindepth 1 -type d 2>/dev/null
           find /sys/fs/cgroup/*/"$cg_podman" -mindepth 1 -type d -name 'libpod-*' 2>/dev/null)
    [ -z "$left" ] || echo "stack.sh: removing $(wc -l <<<"$left") leftover container cgroups" >&2
    find /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_contd-monitors" /sys/fs/cgroup/*/"$cg_runc" /sys/fs/cgroup/*/"$cg_podman" \
        -depth -type d -exec rmdir {} + 2>/dev/null
    left=$(find /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_runc" /sys/fs/cgroup/*/"$cg_podman" -type d 2>/dev/null)
    [ -z "$left" ] || { echo "stack.sh: could not remove cgroups: $(echo $left)" >&2; rc=1; }
    rm -rf --one-file-system "$work"
    [ ! -e "$work" ] || { echo "stack.sh: could not remove $work" >&2; rc=1; }
    left=$(stragglers)
    [ -z "$left" ] || { echo "stack.sh: processes still running: $(echo $left)" >&2; rc=1; }
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -x target/rootfs/bin/busybox ]; then
    cp -a target/rootfs "$rootfs"
else
    scripts/rootfs.sh "$rootfs" || die "no target/rootfs, and building one failed"
fi
mkdir -p "$run" "$work/podman" "$work/bundles"
mount -t tmpfs -o mode=0755 contd-stack "$run" || die "cannot mount a tmpfs on $run"
mkdir -p "$run/runc"

# runc: one bundle per container name (its own cgroup), `runc spec`'s config
# on the shared rootfs, `sleep 1000`.
( cd "$work/bundles" && "$runc" spec )
bundle() {       # name -> its bundle dir, made on first use
    local b=$work/bundles/$1
    if [ ! -d "$b" ]; then
        mkdir "$b"
        sed -e "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" \
            -e 's|"terminal": true|"terminal": false|' \
            -e 's|"sh"$|"sleep", "1000"|' \
            -e "s|\"linux\": {|\"linux\": {\"cgroupsPath\": \"/$cg_runc/$1\",|" \
            "$work/bundles/config.json" >"$b/config.json"
    fi
    echo "$b"
}

start_contd
wait_contd

# One start / one removal per side; names are made unique by the caller.
start() {        # side name
    case $1 in
        contd) ctl run -d --name "$2" "$rootfs" sleep 1000 >/dev/null ;;
        runc) rc_ run -d --bundle "$(bundle "$2")" "$2" </dev/null >/dev/null 2>>"$work/runc.log" ;;
        podman) pod "${prun[@]}" --name "$2" --rootfs "$rootfs" sleep 1000 >/dev/null 2>>"$work/podman.log" ;;
    esac || die "$1: starting $2 failed"
}
remove() {       # side name
    case $1 in
        contd) ctl rm -f "$2" >/dev/null ;;
        runc) rc_ delete -f "$2" >/dev/null 2>>"$work/runc.log" ;;
        podman) pod rm -f -t 0 "$2" >/dev/null 2>>"$work/podman.log" ;;
    esac || die "$1: removing $2 failed"
}
usec() { echo $(( ${2//[.,]/} - ${1//[.,]/} )); }
per_sec() { awk -v n="$1" -v u="$2" 'BEGIN {printf "%.1f", n * 1e6 / u}'; }
sides=(contd runc podman)
order() {        # round -> the sides, rotated so that each goes first in turn
    local r=$1 k
    for k in 0 1 2; do echo "${sides[$(( (r + k) % 3 ))]}"; done
}

# Warm-up: each side's first start (podman creates its storage) is not counted.
for s in "${sides[@]}"; do start "$s" warm-$s; remove "$s" warm-$s; done

# --- Latency ---
declare -A lat=()
for i in $(seq "$L"); do
    for s in $(order "$i"); do
        t0=$EPOCHREALTIME; start "$s" "l$i"; t1=$EPOCHREALTIME
        lat[$s]+=" $(usec "$t0" "$t1")"
        remove "$s" "l$i"
    done
done

# --- Serial starts, removals, 8 clients ---
declare -A serial=() rms=() conc=()
client() {       # side round client count
    local j
    for j in $(seq "$4"); do start "$1" "c$2-$3-$j"; done
}
for r in $(seq "$R"); do
    for s in $(order "$r"); do
        t0=$EPOCHREALTIME
        for i in $(seq "$N"); do start "$s" "s$r-$i"; done
        t1=$EPOCHREALTIME
        serial[$s]+=" $(per_sec "$N" "$(usec "$t0" "$t1")")"
        t0=$EPOCHREALTIME
        for i in $(seq "$N"); do remove "$s" "s$r-$i"; done
        t1=$EPOCHREALTIME
        rms[$s]+=" $(per_sec "$N" "$(usec "$t0" "$t1")")"
        # 8 clients, N/8 (rounded up) each.
        per=$(( (N + 7) / 8 )) pids=()
        t0=$EPOCHREALTIME
        for k in $(seq 8); do client "$s" "$r" "$k" "$per" & pids+=($!); done
        for p in "${pids[@]}"; do wait "$p" || die "$s: a client failed"; done
        t1=$EPOCHREALTIME
        conc[$s]+=" $(per_sec $((per * 8)) "$(usec "$t0" "$t1")")"
        remove_all
    done
done

# --- Adoption ---
per=$(( (A + 7) / 8 )) pids=()
t0=$EPOCHREALTIME
for k in $(seq 8); do
    ( for j in $(seq "$per"); do
          n=$(( (k - 1) * per + j )); [ "$n" -le "$A" ] || break
          start contd "a$n"
      done ) & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "contd: starting the $A containers failed"; done
t1=$EPOCHREALTIME
fill=$(per_sec "$A" "$(usec "$t0" "$t1")")
running() { ctl ps 2>/dev/null | tail -n +2 | grep -c ' running ' || true; }
n=$(running)
[ "$n" = "$A" ] || die "contd lists $n running containers, expected $A"
rss_before=$(awk '/^VmRSS:/ {print $2}' "/proc/$contd_pid/status")
kill -9 "$contd_pid"; wait "$contd_pid" 2>/dev/null || true
t0=$EPOCHREALTIME
start_contd
polls=0
while :; do
    if [ -S "$sock" ]; then
        polls=$((polls + 1))
        [ "$(running)" = "$A" ] && break
    fi
    kill -0 "$contd_pid" 2>/dev/null || die "contd exited: $(tail -n 5 "$work/contd.log")"
    [ "$(usec "$t0" "$EPOCHREALTIME")" -lt 60000000 ] || die "contd did not list $A running containers within 60 s"
done
t1=$EPOCHREALTIME
adopt=$(usec "$t0" "$t1")
read -r rss hwm < <(awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r, h}' "/proc/$contd_pid/status")

# --- Report ---
median() { printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END {x = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || git_rev+=", tree modified"
echo "contd:   $("$bindir/contd" --version) (git $git_rev), binaries from $bindir"
echo "others:  $("$runc" --version | head -n 1); $(podman --version); $(conmon --version | head -n 1)"
echo "kernel:  $(uname -r), $(nproc) cpus, cgroups $(stat -f -c %T /sys/fs/cgroup)$([ -d /sys/fs/cgroup/unified ] && echo ' (hybrid)')"
echo
printf '%-44s %10s %10s %10s %12s %12s\n' "" contd runc podman contd/runc contd/podman
row() {          # label unit contd runc podman [lower-is-better]
    local a=$3 b=$4 c=$5
    if [ "${6:-}" = lower ]; then
        printf '%-44s %10s %10s %10s %12s %12s\n' "$1 ($2)" "$a" "$b" "$c" "$(ratio "$b" "$a")x" "$(ratio "$c" "$a")x"
    else
        printf '%-44s %10s %10s %10s %12s %12s\n' "$1 ($2)" "$a" "$b" "$c" "$(ratio "$a" "$b")x" "$(ratio "$a" "$c")x"
    fi
}
ms() { awk -v u="$1" 'BEGIN {printf "%.1f", u / 1000}'; }
row "run -d latency, median of $L" ms "$(ms "$(median "${lat[contd]}")")" \
    "$(ms "$(median "${lat[runc]}")")" "$(ms "$(median "${lat[podman]}")")" lower
row "serial starts, $N containers" "/s" "$(median "${serial[contd]}")" \
    "$(median "${serial[runc]}")" "$(median "${serial[podman]}")"
row "removals, $N containers" "/s" "$(median "${rms[contd]}")" \
    "$(median "${rms[runc]}")" "$(median "${rms[podman]}")"
row "starts, 8 concurrent clients" "/s" "$(median "${conc[contd]}")" \
    "$(median "${conc[runc]}")" "$(median "${conc[podman]}")"
echo "  (ratios: how many times better contd is; rounds of $R, each figure the median round)"
for s in "${sides[@]}"; do
    printf '  %-7s serial%s | rm%s | 8 clients%s\n' "$s" "${serial[$s]}" "${rms[$s]}" "${conc[$s]}"
done
echo
echo "adoption: $A running containers (started at $fill/s by 8 clients); contd SIGKILLed and restarted"
printf '  exec -> contctl ps lists all %d running    %8.3f s   (%d polls)\n' "$A" \
    "$(awk -v u="$adopt" 'BEGIN {print u / 1e6}')" "$polls"
printf '  contd RSS then                            %8.1f MB   (peak %.1f MB; before the kill %.1f MB)\n' \
    "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" \
    "$(awk -v k="$rss_before" 'BEGIN {print k / 1024}')"
