#!/usr/bin/env bash
# The main job, end to end: start contd on private dirs, run a container from
# the busybox rootfs, show ps and logs, SIGKILL contd, start it again and show
# the container still running with the same pid, then clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

bin=target/debug
work=$(mktemp -d /tmp/contd-demo.XXXXXX)
sock=$work/contd.sock
args=(--state-dir "$work/state" --log-dir "$work/logs" --socket "$sock" --cgroup-parent contd-demo)
ctl() { "$bin/contctl" --socket "$sock" "$@"; }
start_contd() {
    "$bin/contd" "${args[@]}" 2>>"$work/contd.log" &
    contd_pid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && ctl ps >/dev/null 2>&1 && return; sleep 0.05; done
    echo "contd did not start"; cat "$work/contd.log"; exit 1
}
cleanup() {
    ctl rm -f ticker >/dev/null 2>&1 || true
    kill "$contd_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
    # Empty parent cgroups (<parent>/<ns>) go too.
    find /sys/fs/cgroup/*/contd-demo /sys/fs/cgroup/*/contd-demo-monitors -depth -type d -exec rmdir {} + 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start contd"
start_contd
step "contctl run -d: a container that ticks every second"
ctl run -d --name ticker "$PWD/target/rootfs" sh -c 'echo "hello from $(hostname), pid $$"; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done'
sleep 2.2
step "contctl ps"
ctl ps
step "contctl logs ticker"
ctl logs ticker
pid_before=$(ctl inspect ticker | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')

step "kill -9 contd, wait, start it again"
kill -9 "$contd_pid"; wait "$contd_pid" 2>/dev/null || true
sleep 2
start_contd
ctl ps
pid_after=$(ctl inspect ticker | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
echo "init pid before: $pid_before, after: $pid_after"
[ "$pid_before" = "$pid_after" ] || { echo "container changed!"; exit 1; }
step "logs kept flowing while contd was down"
ctl logs ticker | tail -4

step "contctl stop + rm"
ctl stop -t 2 ticker
ctl inspect ticker | grep -E '"(status|exit_code)"'
ctl rm ticker
ctl ps -a
echo; echo "demo: ok"
