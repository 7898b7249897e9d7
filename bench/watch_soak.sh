#!/usr/bin/env bash
# Soak benchmark of `kvmready watch`: at least 10,000 real uevents (veth
# pairs added and removed: 2 net events each way in a network namespace of its own, with
# `ip -batch`), RSS and CPU time of the watch process sampled before and
# after each quarter of them. Flat means: RSS the same after every quarter,
# CPU per 1,000 events the same in every quarter. Needs root and iproute2.
# Not part of ctest. Usage: bench/watch_soak.sh BUILD_DIR [ROUNDS]
#   (scripts/dev.sh bench-watch does it for you; ROUNDS veth pairs added and
#   removed, 4 uevents each, default 2500 = 10,000 events)
set -euo pipefail
build=${1:?build dir}
rounds=${2:-2500}
kv=$(realpath "$build/kvmready")
[ "$(id -u)" = 0 ] || { echo "watch_soak: needs root (network namespaces)" >&2; exit 77; }
ns=kvmready-soak-$$
dir=$(mktemp -d /tmp/kvmready-soak-XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" "$kv" watch --connect 'qemu:///system?socket=/nonexistent/soak.sock' --interval 3600 \
    --output "json:$dir/kvmready.json" --output "prometheus:$dir/kvmready.prom" >"$dir/changes.log" 2>"$dir/watch.log" &
pid=$!
for _ in $(seq 600); do [ -e "$dir/kvmready.prom" ] && break; sleep 0.1; done
[ -e "$dir/kvmready.prom" ] || { cat "$dir/watch.log"; exit 1; }

clk=$(getconf CLK_TCK)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
cpu() { awk -v t="$clk" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$pid/stat"; }
# Waits until the outputs were last rewritten more than a second ago (the
# watcher has worked off every event).
settle() {
    while [ $(( $(date +%s) - $(stat -c %Y "$dir/kvmready.prom") )) -lt 2 ]; do sleep 0.5; done
}
quarter=$(( rounds / 4 ))
printf "%-8s %8s %10s %10s %14s\n" sample events rss_kib cpu_s cpu_ms_per_1k
settle
printf "%-8s %8d %10d %10s %14s\n" start 0 "$(rss)" "$(cpu)" -
prev_cpu=$(cpu)
for q in 1 2 3 4; do
    batch="$dir/batch"
    : > "$batch"
    for i in $(seq "$quarter"); do echo "link add sk$i type veth peer name sp$i"; echo "link del sk$i"; done >> "$batch"
    ip -n "$ns" -batch "$batch"
    settle
    now_cpu=$(cpu)
    per=$(awk -v a="$prev_cpu" -v b="$now_cpu" -v n=$((quarter * 4)) 'BEGIN { printf "%.2f", (b - a) * 1000000 / n }')
    printf "%-8s %8d %10d %10s %14s\n" "q$q" $((q * quarter * 4)) "$(rss)" "$now_cpu" "$per"
    prev_cpu=$now_cpu
done
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=
echo "watch exit: $rc; $(tail -1 "$dir/watch.log")"
leftover=$(find "$dir" -maxdepth 1 -name '.kvmready*' | wc -l)
echo "temporary files left: $leftover"
