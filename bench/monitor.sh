#!/usr/bin/env bash
# Per-container monitor cost: contd-monitor against conmon as podman runs it
# (podman + conmon + runc, cgroupfs manager), both sides in the same run.
#
#   memory      N detached `sleep 1000` containers under each side, one side
#               after the other; every monitor's Rss, Pss and Private_Dirty
#               from /proc/PID/smaps_rollup, mean and median per monitor in
#               kB, and the top mappings by Pss of one monitor of each side.
#               Pss splits shared pages among the processes mapping them, so
#               it falls as N grows; Private_Dirty does not. Both sides are
#               measured SETTLE s (default 1) after their last container
#               started: the steady state (contd-monitor gives back what
#               setting up touched 0.5 s after it, see docs/decisions.md).
#   throughput  a container writes 100 MB to stdout (100 000 lines of 1000
#               bytes, `yes | head`); REPS runs each after one untimed
#               warm-up, interleaved, order alternating: wall time from
#               `run -d` until `wait` returns (contctl / podman), every log
#               checked to hold exactly the 100 000 lines. Also reported,
#               from the same runs: that time less the median run -d->wait
#               time of a `true` container (start and exit overhead, mostly
#               podman's own), and the span between the log's first and last
#               timestamps (how fast the monitor drained the pipe).
#               `podman wait` polls for conmon's exit, by default every
#               250 ms: --interval 10ms keeps that quantum out of the times.
#
# contd side: a private contd on temp dirs with its own --cgroup-parent; the
# monitors are found through <state>/<ns>/<name>/monitor.pid (and counted
# with pgrep). conmon side: plain `podman run -d` (podman execs conmon with
# its usual flags, shown in the report), kept apart from any other podman use by
# its own --root/--runroot/--tmpdir, and with --cgroup-parent /<tag>-podman
# so that its cgroups (libpod-<id>, conmon) belong to this run alone.
# --ulimit: without CAP_SYS_RESOURCE podman's default limits cannot be set.
# Both sides log to a CRI-format file (podman: --log-driver k8s-file).
# Containers, contd, monitors, cgroups, mounts and the temp dir are removed
# at exit, failure included, then checked for leftovers (exit 1 if any).
#
# Needs root, podman, conmon, runc, jq. Usage: bench/monitor.sh [N]  (default 20)
# CONTD_BIN_DIR=DIR (holding contd, contd-monitor, contctl) skips `cargo build`;
# REPS=K sets the throughput runs per side (default 5).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${1:-20}
REPS=${REPS:-5}
SETTLE=${SETTLE:-1}
LINES=100000 LINE_BYTES=1000       # 100 MB, MB = 10^6 bytes throughout
die() { echo "monitor.sh: $*" >&2; exit 1; }
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
[[ $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SETTLE must be a number of seconds, got '$SETTLE'"
[ "$(id -u)" = 0 ] || die "needs root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"
for t in podman conmon runc jq pgrep; do
    command -v "$t" >/dev/null || die "$t not found (scripts/setup.sh installs it)"
done
runc=$(command -v runc)

if [ -n "${CONTD_BIN_DIR:-}" ]; then
    bindir=$(cd "$CONTD_BIN_DIR" && pwd) || die "CONTD_BIN_DIR: no such directory: $CONTD_BIN_DIR"
else
    cargo build --release --quiet -p supervisor -p contd-monitor -p contctl
    bindir=$PWD/target/release
fi
for b in contd contd-monitor contctl; do
    [ -x "$bindir/$b" ] || die "$b not executable in $bindir"
done

work=$(mktemp -d /tmp/contd-monbench.XXXXXX)
tag=${work##*/}
cg_contd=$tag-contd                # /sys/fs/cgroup/<ctrl>/<tag>-contd/<ns>/<name>
cg_podman=$tag-podman              # /sys/fs/cgroup/<ctrl>/<tag>-podman/{libpod-<id>,conmon}
state=$work/state sock=$work/contd.sock rootfs=$work/rootfs
contd_pid=
declare -A inits=()                # container init pid -> its start time

ctl() { "$bindir/contctl" --socket "$sock" "$@"; }
pod() {
    podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
        --runtime "$runc" --cgroup-manager=cgroupfs --events-backend=file "$@"
}
# `podman run -d` as the task asks for it; callers add --name, --rootfs PATH, CMD.
prun=(run -d --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none
      --log-driver k8s-file --cgroup-parent "/$cg_podman")

# Start time of a live (non-zombie) pid, so that a reused pid is not taken
# for a leftover.
starttime() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    [ "$1" != Z ] && echo "${20}"
}
note_init() { inits[$1]=$(starttime "$1") || die "container init $1 is not running"; }
# Processes this run may have left: anything naming the work dir (contd,
# contd-monitor, conmon, podman's exit command), anything in this run's
# cgroups, and the container inits seen.
stragglers() {
    local p f
    {
        pgrep -f -- "$work" || true
        for f in /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_podman"; do
            [ -d "$f" ] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
        done
        for p in "${!inits[@]}"; do
            [ "$(starttime "$p" 2>/dev/null)" = "${inits[$p]}" ] && echo "$p"
        done
    } | sort -un | while read -r p; do
        [ -n "$p" ] && [ "$p" != $$ ] && [ -n "$(starttime "$p" 2>/dev/null)" ] && echo "$p"
    done
}
cleanup() {
    local rc=$? d left i
    set +eu
    # The containers, through their owners.
    if [ -n "$contd_pid" ] && kill -0 "$contd_pid" 2>/dev/null; then
        for d in "$state"/*/*/; do
            [ -d "$d" ] || continue
            d=${d%/}
            ctl --ns "$(basename "$(dirname "$d")")" rm -f "$(basename "$d")" >/dev/null 2>&1
        done
    fi
    [ -d "$work/podman/root" ] && pod rm -f -t 0 -a >/dev/null 2>&1
    if [ -n "$contd_pid" ]; then kill "$contd_pid" 2>/dev/null; wait "$contd_pid" 2>/dev/null; fi
    # Monitors and podman's exit commands end by themselves: 10 s, then SIGKILL.
    for i in $(seq 100); do [ -z "$(stragglers)" ] && break; sleep 0.1; done
    left=$(stragglers)
    if [ -n "$left" ]; then
        echo "monitor.sh: killing leftover processes:" >&2
        for i in $left; do echo "    $i $(tr '\0' ' ' <"/proc/$i/cmdline" 2>/dev/null | head -c 200)" >&2; done
        kill -9 $left 2>/dev/null; sleep 0.5; rc=1
    fi
    if [ "$rc" != 0 ]; then
        for d in contd podman; do
            [ -s "$work/$d.log" ] || continue
            echo "monitor.sh: last lines of $d's stderr:" >&2; tail -n 5 "$work/$d.log" | sed 's/^/    /' >&2
        done
    fi
    # Mounts under the work dir (podman's per-container /dev/shm).
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo |
        sort -r | while read -r d; do umount -l "$d" || echo "monitor.sh: cannot unmount $d" >&2; done
    # Cgroups: the per-container ones should be gone already, the parents
    # (<tag>-contd/<ns>, <tag>-podman/conmon) are removed here.
    left=$(find /sys/fs/cgroup/*/"$cg_contd" -mindepth 2 -type d 2>/dev/null
           find /sys/fs/cgroup/*/"$cg_podman" -mindepth 1 -type d -name 'libpod-*' 2>/dev/null)
    [ -z "$left" ] || echo "monitor.sh: removing leftover container cgroups: $(echo $left)" >&2
    find /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_contd-monitors" /sys/fs/cgroup/*/"$cg_podman" -depth -type d -exec rmdir {} + 2>/dev/null
    left=$(find /sys/fs/cgroup/*/"$cg_contd" /sys/fs/cgroup/*/"$cg_podman" -type d 2>/dev/null)
    [ -z "$left" ] || { echo "monitor.sh: could not remove cgroups: $(echo $left)" >&2; rc=1; }
    rm -rf --one-file-system "$work"
    [ ! -e "$work" ] || { echo "monitor.sh: could not remove $work" >&2; rc=1; }
    left=$(stragglers)
    [ -z "$left" ] || { echo "monitor.sh: processes still running: $(echo $left)" >&2; rc=1; }
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rootfs: a copy of target/rootfs (runtimes may create mount points in
# it), or built by scripts/rootfs.sh as setup builds target/rootfs.
if [ -x target/rootfs/bin/busybox ]; then
    cp -a target/rootfs "$rootfs"
else
    scripts/rootfs.sh "$rootfs" || die "no target/rootfs, and building one failed"
fi
mkdir -p "$work/podman"

"$bindir/contd" --state-dir "$state" --log-dir "$work/logs" --socket "$sock" \
    --cgroup-parent "$cg_contd" --monitor "$bindir/contd-monitor" 2>>"$work/contd.log" &
contd_pid=$!
for i in $(seq 200); do
    [ -S "$sock" ] && ctl ps >/dev/null 2>&1 && break
    kill -0 "$contd_pid" 2>/dev/null || die "contd exited: $(tail -n 5 "$work/contd.log")"
    [ "$i" != 200 ] || die "contd did not answer on $sock within 10 s"
    sleep 0.05
done

# --- Memory ---
rollup() {       # pid -> "rss pss private_dirty" (kB)
    awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_Dirty:/ {d = $2}
         END {if (r == "") exit 1; print r, p, d}' "/proc/$1/smaps_rollup" 2>/dev/null
}
top_maps() {     # pid -> its 5 mappings with the most Pss: pss rss private_dirty perms name
    awk '$1 ~ /^[0-9a-f]+-[0-9a-f]+$/ {
             perm = $2; name = NF >= 6 ? $6 : "[anon]"; sub(/.*\//, "", name); next }
         /^Rss:/ {rss = $2} /^Pss:/ {pss = $2}
         /^Private_Dirty:/ {printf "%8d %8d %8d  %s %s\n", pss, rss, $2, perm, name}' \
        "/proc/$1/smaps" | sort -k1,1nr -k2,2nr | head -n 5
}
declare -A mem=() topm=() toppid=()
measure_mem() {  # side pid...: after a settle, one rollup line per monitor
    local side=$1 p r; shift
    sleep 1
    for p in "$@"; do
        r=$(rollup "$p") || die "$side monitor $p is gone"
        mem[$side]+="$r"$'\n'
    done
    toppid[$side]=$1
    topm[$side]=$(top_maps "$1")
}

# contd: N containers, their monitors from monitor.pid, counted with pgrep.
mons=()
for i in $(seq "$N"); do
    ctl run -d --name "m$i" "$rootfs" sleep 1000 >/dev/null || die "contctl run -d m$i failed: $(tail -n 3 "$work/contd.log")"
    note_init "$(ctl inspect "m$i" | jq -er ".[0].pid")"
    f=$state/default/m$i/monitor.pid
    for _ in $(seq 50); do [ -s "$f" ] && break; sleep 0.1; done
    p=$(cat "$f") || die "no $f"
    tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF -- "contd-monitor --state-dir $state/default/m$i " ||
        die "pid $p in $f is not m$i's monitor"
    mons+=("$p")
done
n=$(pgrep -fc -- "contd-monitor --state-dir $state/") || true
[ "$n" = "$N" ] || die "pgrep finds $n contd-monitor processes, expected $N"
sleep "$SETTLE"
measure_mem contd "${mons[@]}"
contd_self=$(rollup "$contd_pid") || die "contd is gone"
for i in $(seq "$N"); do ctl rm -f "m$i" >/dev/null || die "contctl rm -f m$i failed"; done
for i in $(seq 100); do
    n=$(pgrep -fc -- "contd-monitor --state-dir $state/") || true
    [ "$n" = 0 ] && break
    [ "$i" != 100 ] || die "$n contd-monitor processes still there 10 s after rm -f"
    sleep 0.1
done

# conmon: N containers through podman, conmon's pid from podman inspect.
mons=() conmon_argv=
for i in $(seq "$N"); do
    id=$(pod "${prun[@]}" --name "m$i" --rootfs "$rootfs" sleep 1000 2>>"$work/podman.log") ||
        die "podman run -d m$i failed: $(tail -n 3 "$work/podman.log")"
    read -r p ip <<<"$(pod inspect --format '{{.State.ConmonPid}} {{.State.Pid}}' "$id")"
    note_init "$ip"
    argv=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null) || die "conmon $p of m$i is gone"
    [ "$(head -n 1 <<<"$argv")" = "$(command -v conmon)" ] && grep -qxF -- "$id" <<<"$argv" ||
        die "pid $p is not m$i's conmon: $(head -n 1 <<<"$argv")"
    # Its own flags, paths shortened; the exit command's arguments counted.
    [ -n "$conmon_argv" ] || conmon_argv=$(awk -v w="$work" -v id="$id" '
        /^--exit-command-arg/ {n++; getline; next}
        {gsub(w, "$W"); gsub(id, "<id>"); s = s (NR > 1 ? " " : "") $0}
        END {print s " (+" n " --exit-command-arg)"}' <<<"$argv")
    mons+=("$p")
done
sleep "$SETTLE"
measure_mem conmon "${mons[@]}"
for i in $(seq "$N"); do pod rm -f -t 0 "m$i" >/dev/null 2>>"$work/podman.log" || die "podman rm -f m$i failed"; done
for p in "${mons[@]}"; do
    for i in $(seq 100); do
        kill -0 "$p" 2>/dev/null && [ -n "$(starttime "$p")" ] || break
        [ "$i" != 100 ] || die "conmon $p still there 10 s after podman rm -f"
        sleep 0.1
    done
done

# --- Log throughput ---
writer="yes \"\$(head -c $((LINE_BYTES - 1)) /dev/zero | tr '\\0' x)\" | head -n $LINES"
# check_log FILE -> "<F records> <bad lines> <µs between first and last timestamp>":
# partial (P) records are joined to their F; every line must be LINE_BYTES-1 x's on stdout.
check_log() {
    awk -v len=$((LINE_BYTES - 1)) '
        function secs(ts,   t, s) {
            t = substr(ts, index(ts, "T") + 1); s = substr(t, 7); sub(/[^0-9.].*$/, "", s)
            return substr(t, 1, 2) * 3600 + substr(t, 4, 2) * 60 + s
        }
        BEGIN { want = sprintf("%" len "s", ""); gsub(/ /, "x", want) }
        NR == 1 { first = secs($1) }
        { last = $1
          rest = substr($0, length($1) + 2); sp = index(rest, " ")
          stream = substr(rest, 1, sp - 1); tagc = substr(rest, sp + 1, 1)
          acc = acc substr(rest, sp + 3)
          if (stream != "stdout") bad++
          if (tagc == "F") { n++; if (acc != want) bad++; acc = "" } else if (tagc != "P") bad++ }
        END { if (acc != "") bad++
              span = secs(last) - first; if (span < 0) span += 86400
              printf "%d %d %d\n", n, bad, span * 1e6 }' "$1"
}
declare -A wall=() span=() base=()
usec() { echo $(( ${2//[.,]/} - ${1//[.,]/} )); }
flood() {        # side name record: one 100 MB run, checked; appends times unless warm-up
    local side=$1 n=$2 rec=$3 t0 t1 code id log r
    if [ "$side" = contd ]; then
        t0=$EPOCHREALTIME
        ctl run -d --name "$n" "$rootfs" sh -c "$writer" >/dev/null || die "contctl run -d $n failed"
        code=$(ctl wait "$n") || die "contctl wait $n failed"
        t1=$EPOCHREALTIME
        log=$(ctl inspect "$n" | jq -er ".[0].log_path")
    else
        t0=$EPOCHREALTIME
        id=$(pod "${prun[@]}" --name "$n" --rootfs "$rootfs" sh -c "$writer" 2>>"$work/podman.log") ||
            die "podman run -d $n failed: $(tail -n 3 "$work/podman.log")"
        code=$(pod wait --interval 10ms "$id" 2>>"$work/podman.log") || die "podman wait $n failed"
        t1=$EPOCHREALTIME
        log=$(pod inspect --format '{{.HostConfig.LogConfig.Path}}' "$id")
    fi
    [ "$code" = 0 ] || die "$side: $n exited with $code"
    read -r -a r <<<"$(check_log "$log")"
    [ "${r[0]}" = "$LINES" ] && [ "${r[1]}" = 0 ] ||
        die "$side: $n's log $log has ${r[0]} lines, ${r[1]} bad (want $LINES of $LINE_BYTES bytes)"
    if [ "$side" = contd ]; then ctl rm "$n" >/dev/null && rm -f "$log"; else pod rm "$id" >/dev/null; fi ||
        die "$side: removing $n failed"
    [ "$rec" = 1 ] || return 0
    wall[$side]+=" $(usec "$t0" "$t1")"
    span[$side]+=" ${r[2]}"
}
baseline() {     # side name: run -d -> wait of a `true` container
    local side=$1 n=$2 t0 t1 code id
    t0=$EPOCHREALTIME
    if [ "$side" = contd ]; then
        ctl run -d --name "$n" "$rootfs" true >/dev/null && code=$(ctl wait "$n") || die "contd: $n failed"
        t1=$EPOCHREALTIME
        ctl rm "$n" >/dev/null && rm -f "$work/logs/default/$n.log" || die "contd: removing $n failed"
    else
        id=$(pod "${prun[@]}" --name "$n" --rootfs "$rootfs" true 2>>"$work/podman.log") &&
            code=$(pod wait --interval 10ms "$id" 2>>"$work/podman.log") || die "podman: $n failed"
        t1=$EPOCHREALTIME
        pod rm "$id" >/dev/null || die "podman: removing $n failed"
    fi
    [ "$code" = 0 ] || die "$side: $n exited with $code"
    base[$side]+=" $(usec "$t0" "$t1")"
}
sides=(contd conmon)
for s in "${sides[@]}"; do flood "$s" warm 0; done
for r in $(seq "$REPS"); do
    for k in 0 1; do
        s=${sides[$(( (r + k + 1) % 2 ))]}          # contd first in odd rounds
        flood "$s" "t$r" 1
        baseline "$s" "b$r"
    done
done

# --- Report ---
median() { printf '%s\n' $1 | sort -n | awk '{a[NR] = $1} END {printf "%.0f", NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
col() { awk -v c="$2" 'NF {print $c}' <<<"$1"; }
mean() { awk '{s += $1} END {printf "%.0f", NR ? s / NR : 0}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
mbps() { awk -v b=$((LINES * LINE_BYTES)) -v u="$1" 'BEGIN {printf "%.1f", (u > 0) ? b / u : 0}'; }   # bytes/µs = MB/s
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || git_rev+=", tree modified"
echo "contd:   $("$bindir/contd" --version) (git $git_rev), binaries from $bindir"
echo "conmon:  $(conmon --version | head -n 1); $(podman --version); $(runc --version | head -n 1)"
echo "kernel:  $(uname -r), $(nproc) cpus, cgroups $(stat -f -c %T /sys/fs/cgroup)$([ -d /sys/fs/cgroup/unified ] && echo ' (hybrid)')"
echo "conmon as podman ran it (W=$work):"
echo "    $conmon_argv"
echo
printf 'memory per monitor, %d containers each (kB)  %18s  %18s  %12s\n' "$N" contd-monitor conmon contd/conmon
printf '%-43s  %8s  %8s  %8s  %8s  %12s\n' "" mean median mean median "(medians)"
for k in 1 2 3; do
    name=$(cut -d' ' -f"$k" <<<"Rss Pss Private_Dirty")
    a=$(col "${mem[contd]}" "$k") b=$(col "${mem[conmon]}" "$k")
    printf '%-43s  %8s  %8s  %8s  %8s  %12s\n' "  $name" "$(mean "$a")" "$(median "$a")" \
        "$(mean "$b")" "$(median "$b")" "$(ratio "$(median "$a")" "$(median "$b")")"
done
read -r cr cp cd <<<"$contd_self"
echo "  (contd itself, one per node, not counted: Rss $cr, Pss $cp, Private_Dirty $cd kB)"
echo
printf 'log throughput, %d MB to stdout, %d runs each, median MB/s   %14s  %8s  %12s\n' \
    $((LINES * LINE_BYTES / 1000000)) "$REPS" contd conmon contd/conmon
row() {          # label contd-µs conmon-µs
    local a b
    a=$(mbps "$2") b=$(mbps "$3")
    printf '%-61s  %14s  %8s  %12s\n' "  $1" "$a" "$b" "$(ratio "$a" "$b")"
}
wc_=$(median "${wall[contd]}") wp=$(median "${wall[conmon]}")
bc_=$(median "${base[contd]}") bp=$(median "${base[conmon]}")
row "run -d -> wait (contctl / podman)" "$wc_" "$wp"
row "same, less a \`true\` container's ($((bc_ / 1000)) ms / $((bp / 1000)) ms)" \
    "$((wc_ - bc_))" "$((wp - bp))"
row "first -> last log timestamp" "$(median "${span[contd]}")" "$(median "${span[conmon]}")"
printf '  run -d -> wait, ms, all runs: contd%s; conmon%s\n' \
    "$(for t in ${wall[contd]}; do printf ' %d' $((t / 1000)); done)" \
    "$(for t in ${wall[conmon]}; do printf ' %d' $((t / 1000)); done)"
echo
echo "top 5 mappings by Pss, one monitor each (kB):"
for s in contd conmon; do
    echo "  $s (pid ${toppid[$s]}):      pss      rss    dirty  perms mapping"
    sed 's/^/  /' <<<"${topm[$s]}"
done
