#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, sanitized parsers only) in
# build-fuzz/ and runs each one in turn, one process at a time:
#   scripts/fuzz.sh [SECONDS-PER-HARNESS] [HARNESS...]
# Seeds come from real data: the CPUID corpus (../shared/corpus/cpuid), the
# recorded host trees (tests/fixtures), a bundle packed from one, netlink
# replies of this machine, nf_tables dumps of the kernel for real rulesets
# (fuzz/corpus/nft, scripts/capture-nft-seeds.sh), libvirt replies as the
# daemon frames them.
# Prints one line per harness: runs, exec/s, coverage; exits 1 on a crash
# (the reproducer is kept in build-fuzz/findings/).
set -euo pipefail
secs=${1:-30}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
out=${KVMREADY_FUZZ_BUILD_DIR:-$here/build-fuzz}
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(cpuid xml bundle wire netlink nft journal pci_config)

t0=$(date +%s)
CC=clang CXX=clang++ cmake -S "$here" -B "$out" -DKVMREADY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# A harness that does not build is a failure, said here, not later as a
# missing binary.
if ! cmake --build "$out" -j"${KVMREADY_FUZZ_JOBS:-2}" >"$out/build.log" 2>&1; then
    grep -E "error|undefined reference" "$out/build.log" | head -20 >&2 || true
    echo "fuzz: the harnesses do not build (see $out/build.log)" >&2
    exit 1
fi
grep -E "warning" "$out/build.log" >&2 || true
echo "fuzz: harnesses built in $(( $(date +%s) - t0 )) s" >&2

seeds=$out/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{cpuid,xml,bundle,wire,netlink,nft,journal,pci_config} "$out/findings"
corpus=$here/../shared/corpus/cpuid
[ -d "$corpus" ] && find "$corpus" -maxdepth 2 -type f ! -name '*.md' ! -name '*.tsv' -size -1024k -exec cp --backup=numbered -t "$seeds/cpuid" {} + 2>/dev/null || true
find "$here/tests/fixtures" -path '*/.kvmready/*cpuid*' -type f -exec cp --backup=numbered -t "$seeds/cpuid" {} + 2>/dev/null || true
find "$here/tests/fixtures" "$corpus" -name '*.xml' -type f -size -1024k -exec cp --backup=numbered -t "$seeds/xml" {} + 2>/dev/null || true
# A bundle as `kvmready report` lays it out, packed from a recorded tree.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/kvmready-report"
cp -r "$here/tests/fixtures/intel-vtx" "$tmp/kvmready-report/host"
printf '{"format": "kvmready-bundle/1", "version": "0.1.0", "created": "2024-01-01T00:00:00Z", "hostname": "h", "redacted": true}\n' \
    > "$tmp/kvmready-report/manifest.json"
tar -C "$tmp" -czf "$seeds/bundle/intel-vtx.tar.gz" kvmready-report
tar -C "$tmp" -cf "$seeds/bundle/intel-vtx.tar" kvmready-report
# This machine's rtnetlink link dump: attributes as the kernel nests them.
python3 - "$seeds/netlink" <<'PY' || true
import socket, struct, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
s.send(struct.pack('=LHHLL', 32, 18, 0x301, 1, 0) + struct.pack('=BxHiII', 0, 0, 0, 0, 0))
n = 0
while n < 64:
    data = s.recv(65536)
    off, done = 0, False
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from('=LH', data, off)
        if typ == 3 or ln < 16: done = True; break
        open(f"{sys.argv[1]}/link{n}", "wb").write(data[off + 32:off + ln]); n += 1
        off += (ln + 3) & ~3
    if done: break
PY
cp "$here"/fuzz/corpus/nft/*.nl "$seeds/nft/"
# PCI config spaces as the kernel shows them: this machine's (root reads all
# 4 KiB of a PCIe device) and the q35 guest's recorded in the devices bundle.
for c in /sys/bus/pci/devices/*/config; do
    [ -r "$c" ] && cp "$c" "$seeds/pci_config/$(basename "$(dirname "$c")")" 2>/dev/null || true
done
tar -xzf "$here/tests/bundles/devices-q35-iommu.tar.gz" -C "$tmp" --wildcards '*/config' 2>/dev/null || true
find "$tmp" -name config -path '*/devices/*' -type f -exec cp --backup=numbered -t "$seeds/pci_config" {} + 2>/dev/null || true
KVMREADY_FUZZ_SEEDS="$seeds/wire" "$out/fuzz/fuzz_wire" -runs=0 >/dev/null 2>&1 || true
cat > "$seeds/journal/run.jsonl" <<'J'
{"type":"run","id":"20240101T000000.000000Z-1","created":"2024-01-01T00:00:00Z","argv":["kvmready","fix","--apply"],"root":"","connect_uri":"qemu:///system","user":"","time":"2024-01-01T00:00:00Z"}
{"type":"prepare","step":0,"fix":"kvm.group","op":"node.perms","summary":"give /dev/kvm to group kvm","args":{"path":"/dev/kvm","mode":432,"group":"kvm"},"undo":{"path":"/dev/kvm","mode":384,"uid":0,"gid":0},"time":"2024-01-01T00:00:00Z"}
{"type":"done","step":0,"undo":{"path":"/dev/kvm","mode":384,"uid":0,"gid":0},"time":"2024-01-01T00:00:01Z"}
{"type":"prepare","step":1,"fix":"sysctl","op":"file.write","summary":"write /etc/sysctl.d/99-kvmready.conf","args":{"path":"/etc/sysctl.d/99-kvmready.conf","content":"a\n","before":null,"mode":420,"uid":0,"gid":0},"undo":{"path":"/etc/sysctl.d/99-kvmready.conf","existed":false,"temp":".99-kvmready.conf.kvmready-x-1","written":"a\n","created_dirs":["/etc/sysctl.d"]},"time":"2024-01-01T00:00:01Z"}
{"type":"prepare","step":2,"fix":"kvm.group","op":"command","summary":"add u to kvm","args":{"argv":["usermod","-aG","kvm","u"],"undo_argv":["gpasswd","-d","u","kvm"],"snapshots":["/etc/group"]},"undo":{"argv":["usermod","-aG","kvm","u"],"undo_argv":["gpasswd","-d","u","kvm"],"snapshots":[{"path":"/etc/group","existed":true,"copy":"/nonexistent-kvmready-fuzz/runs/x/step2.snap0"}]},"time":"2024-01-01T00:00:01Z"}
{"type":"end","status":"complete","time":"2024-01-01T00:00:02Z"}
{"type":"undo-end","status":"complete","time":"2024-01-01T00:00:03Z"}
J

fail=0
for h in "${harnesses[@]}"; do
    work=$out/corpus/$h
    mkdir -p "$work"
    log=$out/fuzz_$h.log
    if ! "$out/fuzz/fuzz_$h" "$work" "$seeds/$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/findings/$h-" >"$log" 2>&1; then
        echo "fuzz_$h: FAILED (see $log and $out/findings/)" >&2
        fail=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    echo "fuzz_$h: ${secs}s, $runs runs, $eps exec/s, $cov"
done
exit $fail
