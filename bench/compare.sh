#!/usr/bin/env bash
# Side-by-side wall time of `kvmready check` and the tools people use today,
# on this machine, in one hyperfine run; then the in-process micro-benchmarks.
# Usage: bench/compare.sh BUILD_DIR   (scripts/dev.sh bench does it for you)
set -euo pipefail
build=${1:?build dir}
out=${KVMREADY_BENCH_OUT:-$build/bench-results.md}
kv=$build/kvmready
cmds=("$kv check --color=never" "$kv check --json")
names=("kvmready check" "kvmready check --json")
if command -v virt-host-validate >/dev/null; then cmds+=("virt-host-validate qemu"); names+=("virt-host-validate qemu"); fi
if command -v kvm-ok >/dev/null; then cmds+=("kvm-ok"); names+=("kvm-ok"); fi
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
# Exit codes differ by design (not ready = 1), so ignore them.
hyperfine -N -i --warmup 5 --runs 100 --export-markdown "$out" "${args[@]}"
echo
cat "$out"
echo
echo "checks run: kvmready $("$kv" check --list | wc -l), virt-host-validate qemu $(virt-host-validate qemu 2>/dev/null | grep -c 'Checking' || true)"
if [ -x "$build/bench/kvmready_bench" ]; then
    # The own-code benchmarks (XML, wire client, nf_tables) need root for the
    # private libvirtd and the network namespace; without it they say so and skip.
    "$build/bench/kvmready_bench" --benchmark_min_time=0.2 --benchmark_out="$build/bench-results.json" --benchmark_out_format=json
fi
