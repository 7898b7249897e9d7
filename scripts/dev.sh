#!/usr/bin/env bash
# One entry point for newcomers and CI on Debian 12:
#   scripts/dev.sh check   install what is missing, build, run `kvmready check`
#   scripts/dev.sh test    the same, then run the whole test suite (CTest)
#   scripts/dev.sh bench   the same, then the benchmarks (README figures)
#   scripts/dev.sh fuzz [SECONDS]  the libFuzzer harnesses, SECONDS each (default 600)
#   scripts/dev.sh package  build, then the Debian package (CPack) and its lintian report
# Installs only packages that are missing; needs root (or sudo) for apt.
set -euo pipefail

mode=${1:-check}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
build=${KVMREADY_BUILD_DIR:-$here/build}
jobs=$(nproc 2>/dev/null || echo 2)

# CPack's DEB generator needs dpkg-shlibdeps (dpkg-dev); lintian judges the result.
package_pkgs=(dpkg-dev lintian man-db adduser util-linux)
build_pkgs=(cmake g++ make pkg-config libcli11-dev nlohmann-json3-dev libfmt-dev libacl1-dev libarchive-dev libxml2-dev libvirt-dev libudev-dev)
# Real components the tests start themselves: libvirtd/virtlogd, QEMU, network namespaces.
# kmod: the guest initramfs packs /usr/bin/kmod (modprobe, rmmod); virtinst: the seed workflow's virt-install.
# python3: the build composes the fixture trees (tests/support/fixture_overlay.py).
# prometheus (promtool), prometheus-node-exporter, nagios-nrpe-server/-plugin, python3-junitparser, libxml2-utils
# (xmllint): the real consumers of check's output formats (tests/output_consumers_test.cpp).
test_pkgs=(libgtest-dev python3 cpuid qemu-system-x86 cpio busybox-static kmod libvirt-daemon-system dnsmasq-base iproute2 iptables nftables ovmf virtinst
           prometheus prometheus-node-exporter nagios-nrpe-server nagios-nrpe-plugin python3-junitparser libxml2-utils)
# The package test (tests/package_test.cpp) builds, lints, installs and purges the .deb and runs
# man; the completion test runs the three shells' completion.
test_pkgs+=("${package_pkgs[@]}" bash-completion zsh fish)
# The own-code benchmarks (bench/*_bench.cpp) start a private libvirtd and fill a network namespace's firewall.
bench_pkgs=(libbenchmark-dev hyperfine libvirt-clients cpu-checker libvirt-daemon-system dnsmasq-base iproute2 iptables nftables)
# libFuzzer comes with clang's runtime libraries.
fuzz_pkgs=(clang libclang-rt-14-dev python3)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}" >&2
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

configure_and_build() {
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$build" -j"$jobs" 2>&1 | grep -E "error|warning: unused|^make.*Error" || true
    test -x "$build/kvmready"
}

case "$mode" in
check)
    install_missing "${build_pkgs[@]}"
    configure_and_build -DKVMREADY_TESTS=OFF -DKVMREADY_BENCH=OFF
    exec "$build/kvmready" check "$@"
    ;;
test)
    install_missing "${build_pkgs[@]}" "${test_pkgs[@]}"
    # The guest-kernel tests boot Debian's cloud kernel under QEMU TCG.
    "$here/scripts/fetch-guest-kernel.sh" >&2
    configure_and_build -DKVMREADY_TESTS=ON -DKVMREADY_BENCH=OFF
    "$build/kvmready" check || true
    # Every parser fuzzed briefly (KVMREADY_FUZZ_SECONDS each, 0 skips); the
    # long run is `scripts/dev.sh fuzz`.
    install_missing "${fuzz_pkgs[@]}"
    fuzz_secs=${KVMREADY_FUZZ_SECONDS:-15}
    [ "$fuzz_secs" -gt 0 ] && "$here/scripts/fuzz.sh" "$fuzz_secs"
    cd "$build"
    ctest --output-on-failure -j"$jobs" "$@"
    ;;
fuzz)
    install_missing "${build_pkgs[@]}" "${fuzz_pkgs[@]}"
    exec "$here/scripts/fuzz.sh" "${1:-600}"
    ;;
package)
    install_missing "${build_pkgs[@]}" "${package_pkgs[@]}"
    configure_and_build -DKVMREADY_TESTS=OFF -DKVMREADY_BENCH=OFF
    cd "$build"
    rm -f kvmready_*.deb
    cpack -G DEB >/dev/null
    deb=$(ls kvmready_*.deb)
    echo "dev.sh: $build/$deb ($(stat -c %s "$deb") bytes); lintian:" >&2
    lintian --fail-on error "$deb"
    ;;
bench)
    install_missing "${build_pkgs[@]}" "${bench_pkgs[@]}"
    configure_and_build -DCMAKE_BUILD_TYPE=Release -DKVMREADY_TESTS=OFF -DKVMREADY_BENCH=ON
    "$here/bench/compare.sh" "$build" "$@"
    ;;
*)
    echo "usage: scripts/dev.sh check|test|bench|fuzz|package [args]" >&2
    exit 64
    ;;
esac
