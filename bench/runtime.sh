#!/usr/bin/env bash
# contd-runtime vs runc vs crun as OCI runtimes on one busybox bundle running
# /bin/true, N iterations each, interleaved (order rotated every iteration):
#   run    `RT run ID` in the foreground (waits for the exit, then deletes)
#   cycle  `RT create` + `RT start` + `RT state` until "stopped" + `RT delete`
#   secure `RT run ID` with the secure default spec `contd-runtime spec`
#          writes (moby's seccomp allow-list, 14 capabilities, masked paths),
#          the same config.json for every runtime
# Prints median/min/max in ms per runtime and the contd/runc, contd/crun ratios.
# Each runtime has its own --root; every container gets its own cgroupsPath
# under /<tag>/, checked for leftovers after each run and removed at exit.
#
# crun refuses hybrid cgroups (v1 + cgroup2 on /sys/fs/cgroup/unified), so on
# such hosts crun is driven by a server loop started once in a private mount
# namespace with the unified mount unmounted; the server times only the crun
# invocations, with the same code the other runtimes are timed with.
# ALL_IN_NS=1 runs all three there (same, pure-v1 cgroup view for everyone).
#
# Needs root, jq and crun. Usage: bench/runtime.sh [N]  (default 30)
# CONTD_RUNTIME=/path/to/bin skips `cargo build` (e.g. $(command -v runc)).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${1:-30}
die() { echo "runtime.sh: $*" >&2; exit 1; }
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[ "$(id -u)" = 0 ] || die "needs root"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"
for t in runc crun jq unshare; do
    command -v "$t" >/dev/null || die "$t not found (scripts/setup.sh installs it)"
done

if [ -n "${CONTD_RUNTIME:-}" ]; then
    contd=$CONTD_RUNTIME
else
    cargo build --release --quiet -p runtime-core --bin contd-runtime
    contd=$PWD/target/release/contd-runtime
fi
[ -x "$contd" ] || die "contd-runtime not executable: $contd"

names=(contd-runtime runc crun)
declare -A bin=([contd-runtime]=$contd [runc]=$(command -v runc) [crun]=$(command -v crun))

work=$(mktemp -d /tmp/contd-rtbench.XXXXXX)
tag=${work##*/}                    # cgroups: /sys/fs/cgroup/<ctrl>/<tag>/<runtime>-<id>
bundle=$work/bundle
ns_pid= ns_w= ns_r=
declare -A pending=()              # runtime -> id of a container that may exist

# Runs a runtime's command where that runtime is benchmarked (host or namespace).
rt_exec() {
    local rt=$1; shift
    if [ "${where[$rt]}" = ns ]; then
        unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' _ "${bin[$rt]}" "$@"
    else
        "${bin[$rt]}" "$@"
    fi
}
cleanup() {
    local rc=$? rt id left
    set +eu
    if [ -n "$ns_w" ]; then exec {ns_w}>&-; fi
    if [ -n "$ns_r" ]; then exec {ns_r}<&-; fi
    if [ -n "$ns_pid" ]; then
        for _ in $(seq 50); do kill -0 "$ns_pid" 2>/dev/null || break; sleep 0.1; done
        kill "$ns_pid" 2>/dev/null; wait "$ns_pid" 2>/dev/null
    fi
    for rt in "${names[@]}"; do
        [ -d "$work/root/$rt" ] || continue
        # What we know we left, plus whatever the root dir still lists.
        for id in ${pending[$rt]:-} $(find "$work/root/$rt" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null); do
            rt_exec "$rt" --root "$work/root/$rt" delete --force "$id" >/dev/null 2>&1
        done
    done
    left=$(find /sys/fs/cgroup/*/"$tag" -mindepth 1 -type d 2>/dev/null)
    [ -z "$left" ] || echo "runtime.sh: removing leftover cgroups: $(echo $left)" >&2
    find /sys/fs/cgroup/*/"$tag" -depth -type d -exec rmdir {} + 2>/dev/null
    left=$(find /sys/fs/cgroup/*/"$tag" -type d 2>/dev/null)
    [ -z "$left" ] || { echo "runtime.sh: could not remove cgroups: $(echo $left)" >&2; rc=1; }
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The bundle: busybox rootfs + `runc spec` running /bin/true without a tty.
mkdir -p "$bundle" "$work/log"
if [ -x target/rootfs/bin/busybox ]; then
    cp -a target/rootfs "$bundle/rootfs"
else                               # as scripts/setup.sh builds target/rootfs
    scripts/rootfs.sh "$bundle/rootfs" || die "no target/rootfs, and building one failed"
fi
( cd "$work" && runc spec && mv config.json spec.json )
jq '.process.args = ["/bin/true"] | .process.terminal = false
    | .linux.cgroupsPath = "@CGPATH@"' "$work/spec.json" > "$work/config.tmpl"
# The secure bundle: the same rootfs (a symlink), contd-runtime's default spec.
sbundle=$work/bundle-secure
mkdir -p "$sbundle"
"$contd" spec --bundle "$work" && mv "$work/config.json" "$work/secure.json"
# crun 1.8 accepts only 1.0.x versions; nothing in the spec is newer.
jq --arg r "$bundle/rootfs" '.ociVersion = "1.0.2-dev" | .process.args = ["/bin/true"] | .process.terminal = false | .root.path = $r
    | .linux.cgroupsPath = "@CGPATH@"' "$work/secure.json" > "$work/secure.tmpl"
# set_cgroup MODE CGPATH: the bundle of MODE gets its config with that cgroup.
set_cgroup() {
    if [ "$1" = secure ]; then sed "s|@CGPATH@|/$tag/$2|" "$work/secure.tmpl" > "$sbundle/config.json"
    else sed "s|@CGPATH@|/$tag/$2|" "$work/config.tmpl" > "$bundle/config.json"; fi
}

# --- Timing: these functions also run, unchanged, in the namespace server. ---
# Each sets RES to "ok <µs> <polls> <left>" or "fail <stage> <rc>"; only the
# runtime invocations lie between the two clock reads (bash's EPOCHREALTIME,
# no fork). All runtime stdio goes to /dev/null and the runtime's log.
bench_run() {   # rt_bin root bundle id log
    local rt=$1 root=$2 b=$3 id=$4 log=$5 t0 t1 rc=0 left=0
    t0=$EPOCHREALTIME
    "$rt" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>>"$log" || rc=$?
    t1=$EPOCHREALTIME
    if [ "$rc" != 0 ]; then RES="fail run $rc"; return; fi
    # Foreground run should have deleted the container; note it if not.
    if "$rt" --root "$root" state "$id" </dev/null >/dev/null 2>&1; then
        left=1
        "$rt" --root "$root" delete --force "$id" </dev/null >/dev/null 2>>"$log" || true
    fi
    RES="ok $(( ${t1//[.,]/} - ${t0//[.,]/} )) 0 $left"
}
bench_cycle() { # rt_bin root bundle id log
    local rt=$1 root=$2 b=$3 id=$4 log=$5 t0 t1 rc=0 st polls=0 deadline
    t0=$EPOCHREALTIME
    "$rt" --root "$root" create --bundle "$b" "$id" </dev/null >/dev/null 2>>"$log" || rc=$?
    if [ "$rc" != 0 ]; then RES="fail create $rc"; return; fi
    "$rt" --root "$root" start "$id" </dev/null >/dev/null 2>>"$log" || rc=$?
    if [ "$rc" != 0 ]; then RES="fail start $rc"; return; fi
    deadline=$(( ${t0//[.,]/} + 10000000 ))
    while :; do
        polls=$((polls + 1))
        st=$("$rt" --root "$root" state "$id" </dev/null 2>>"$log") || rc=$?
        if [ "$rc" != 0 ]; then RES="fail state $rc"; return; fi
        [[ $st =~ \"status\":\ *\"stopped\" ]] && break
        if (( ${EPOCHREALTIME//[.,]/} > deadline )); then RES="fail wait-stopped(10s) 0"; return; fi
    done
    "$rt" --root "$root" delete "$id" </dev/null >/dev/null 2>>"$log" || rc=$?
    t1=$EPOCHREALTIME
    if [ "$rc" != 0 ]; then RES="fail delete $rc"; return; fi
    RES="ok $(( ${t1//[.,]/} - ${t0//[.,]/} )) $polls 0"
}
serve() {       # one request per line: mode rt_bin root bundle id log (tabs)
    local mode rt root b id log
    echo ready
    while IFS=$'\t' read -r mode rt root b id log; do
        RES="fail bad-request 0"
        case $mode in run|secure) bench_run "$rt" "$root" "$b" "$id" "$log" ;;
                    cycle) bench_cycle "$rt" "$root" "$b" "$id" "$log" ;; esac
        echo "$RES"
    done
}

# Where each runtime runs: crun in the private namespace on hybrid hosts.
hybrid=0
if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] &&
   [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then hybrid=1; fi
declare -A where=()
for rt in "${names[@]}"; do where[$rt]=host; done
if [ "$hybrid" = 1 ]; then
    where[crun]=ns
    [ "${ALL_IN_NS:-0}" = 1 ] && for rt in "${names[@]}"; do where[$rt]=ns; done
fi
if [[ " ${where[*]} " == *" ns "* ]]; then
    { echo 'set -uo pipefail; export LC_ALL=C'
      declare -f bench_run bench_cycle serve
      echo serve; } > "$work/ns-server.sh"
    mkfifo "$work/ns.in" "$work/ns.out"
    unshare -m sh -c 'umount /sys/fs/cgroup/unified || exit 1; exec bash "$1"' _ "$work/ns-server.sh" \
        <"$work/ns.in" >"$work/ns.out" 2>>"$work/log/ns-server.log" &
    ns_pid=$!
    exec {ns_w}>"$work/ns.in" {ns_r}<"$work/ns.out"
    read -r -t 10 -u "$ns_r" line && [ "$line" = ready ] ||
        die "namespace server did not start: $(cat "$work/log/ns-server.log")"
fi

declare -A times=() polls=() leftrun=() leftcg=() failed=()
# measure MODE RT ID: one timed operation; records the time or the failure.
measure() {
    local mode=$1 rt=$2 id=$3 root=$work/root/$2 log=$work/log/$2.log d r b=$bundle
    set_cgroup "$mode" "$rt-$id"              # cgroup /<tag>/<runtime>-<id>
    [ "$mode" != secure ] || b=$sbundle
    pending[$rt]=$id
    if [ "${where[$rt]}" = ns ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "${bin[$rt]}" "$root" "$b" "$id" "$log" >&"$ns_w"
        read -r -t 120 -u "$ns_r" RES || RES="fail namespace-server-died 0"
    else
        "bench_${mode/secure/run}" "${bin[$rt]}" "$root" "$b" "$id" "$log"
    fi
    read -r -a r <<<"$RES"
    if [ "${r[0]}" != ok ]; then
        failed[$rt]="$mode: '$rt ${r[1]}' failed (exit ${r[2]}) for container $id"
        return
    fi
    unset 'pending[$rt]'
    [ "$id" = "${id#warm}" ] || return 0      # warm-up runs are not recorded
    times[$rt.$mode]+=" ${r[1]}"
    polls[$rt]=$(( ${polls[$rt]:-0} + r[2] ))
    leftrun[$rt]=$(( ${leftrun[$rt]:-0} + r[3] ))
    for d in /sys/fs/cgroup/*/"$tag/$rt-$id"; do   # untimed: did it remove its cgroup?
        [ -d "$d" ] || continue
        leftcg[$rt]=$(( ${leftcg[$rt]:-0} + 1 )); rmdir "$d" 2>/dev/null || true
    done
}

for rt in "${names[@]}"; do mkdir -p "$work/root/$rt"; : > "$work/log/$rt.log"; done
# One untimed round each: warms caches and creates the /<tag> parent cgroups.
for rt in "${names[@]}"; do
    measure run "$rt" warm-r; [ -n "${failed[$rt]:-}" ] || measure cycle "$rt" warm-c
    [ -n "${failed[$rt]:-}" ] || measure secure "$rt" warm-s
done
for i in $(seq "$N"); do
    for k in "${!names[@]}"; do
        rt=${names[$(( (i + k) % ${#names[@]} ))]}
        [ -z "${failed[$rt]:-}" ] || continue
        measure run "$rt" "r$i"
        [ -z "${failed[$rt]:-}" ] || continue
        measure cycle "$rt" "c$i"
        [ -z "${failed[$rt]:-}" ] || continue
        measure secure "$rt" "s$i"
    done
done

# --- Report ---
stats() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {
    m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
    printf "%.2f %.2f %.2f", m/1000, a[1]/1000, a[NR]/1000 }'; }
ver() { "$1" --version 2>/dev/null | head -1 || true; }
echo "contd-runtime: $contd ($(ver "$contd"))"
echo "runc:          $(ver runc)"
echo "crun:          $(ver crun)"
echo "cgroups: $([ "$hybrid" = 1 ] && echo "hybrid; in a private mount namespace without /sys/fs/cgroup/unified:" || echo "not hybrid; all on the host") $(for rt in "${names[@]}"; do [ "${where[$rt]}" = ns ] && printf '%s ' "$rt"; done)"
echo "iterations each (interleaved, rotated): $N; bundle: busybox /bin/true"
echo "  run, cycle: \`runc spec\` (no seccomp); secure: \`contd-runtime spec\` (seccomp allow-list)"
echo
printf '%-14s %26s   %26s   %26s   %s\n' "" "run (ms)" "create+start+wait+delete (ms)" "run, secure spec (ms)" ""
printf '%-14s %8s %8s %8s   %8s %8s %8s   %8s %8s %8s   %s\n' runtime median min max median min max \
    median min max "state polls/cycle"
declare -A med=()
for rt in "${names[@]}"; do
    if [ -n "${failed[$rt]:-}" ]; then printf '%-14s FAILED\n' "$rt"; continue; fi
    read -r mr nr xr <<<"$(stats "${times[$rt.run]}")"
    read -r mc nc xc <<<"$(stats "${times[$rt.cycle]}")"
    read -r ms ns xs <<<"$(stats "${times[$rt.secure]}")"
    med[$rt.run]=$mr med[$rt.cycle]=$mc med[$rt.secure]=$ms
    printf '%-14s %8s %8s %8s   %8s %8s %8s   %8s %8s %8s   %.1f\n' "$rt" "$mr" "$nr" "$xr" \
        "$mc" "$nc" "$xc" "$ms" "$ns" "$xs" "$(awk -v p="${polls[$rt]}" -v n="$N" 'BEGIN {print p/n}')"
done
echo
ratio() { [ -n "${med[$1]:-}" ] && [ -n "${med[$2]:-}" ] && awk -v a="${med[$1]}" -v b="${med[$2]}" 'BEGIN {printf "%.2f", a/b}' || echo n/a; }
for other in runc crun; do
    printf 'median ratio contd/%-5s  run %5s   cycle %5s   secure %5s\n' "$other" \
        "$(ratio contd-runtime.run "$other.run")" "$(ratio contd-runtime.cycle "$other.cycle")" \
        "$(ratio contd-runtime.secure "$other.secure")"
done
for rt in "${names[@]}"; do
    [ "${leftrun[$rt]:-0}" = 0 ] || echo "note: $rt left the container behind after foreground run ${leftrun[$rt]}/$N times (deleted untimed)"
    [ "${leftcg[$rt]:-0}" = 0 ] || echo "note: $rt left ${leftcg[$rt]} cgroup dirs behind (removed untimed)"
done
status=0
for rt in "${names[@]}"; do
    [ -n "${failed[$rt]:-}" ] || continue
    status=1
    echo "FAILED $rt: ${failed[$rt]}; last stderr lines:" >&2
    tail -n 5 "$work/log/$rt.log" | sed 's/^/    /' >&2
done
exit "$status"
