#!/usr/bin/env bash
# Records the kernel's own nf_tables netlink replies for the rulesets in
# fuzz/corpus/nft/*.sh: the seeds of the fuzz harness (fuzz/fuzz_nft.cpp) and
# the data the decoder is held to `nft -j` on (tests/nft_decode_test.cpp).
#   scripts/capture-nft-seeds.sh KVMREADY-BINARY [OUT-DIR] [RULESET...]
# Each ruleset is loaded in a network namespace made for it (and deleted
# after), never on this machine's own interfaces or ruleset. Per ruleset NAME:
#   NAME.nl         the reply messages, as kvmready read them (KVMREADY_NFT_CAPTURE)
#   NAME.nft.json   `nft -j list ruleset` of the same namespace
#   NAME.ipt.txt    `iptables-nft -S` (the filter table: compat matches' options)
#   NAME.links.json the namespace's interfaces, {"INDEX": "NAME"}
# Needs root, ip, nft, iptables-nft.
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$here/fuzz/corpus/nft}
shift $(( $# >= 2 ? 2 : 1 ))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$here"/fuzz/corpus/nft/*.sh; do names+=("$(basename "$f" .sh)"); done
fi
mkdir -p "$out"
ns=
cleanup() { [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
for name in "${names[@]}"; do
    ns=kvmready-nftcap-$$-$name
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # kvmready reads nf_tables when there is a bridge to judge.
    ip -n "$ns" link add br0 type bridge
    ip netns exec "$ns" sh "$here/fuzz/corpus/nft/$name.sh"
    rm -f "$out/$name.nl"
    ip netns exec "$ns" env KVMREADY_NFT_CAPTURE="$out/$name.nl" "$bin" check net --json \
        --connect 'qemu:///system?socket=/nonexistent/kvmready-nft-capture.sock' >/dev/null || true
    [ -s "$out/$name.nl" ] || { echo "$name: kvmready captured nothing" >&2; exit 1; }
    ip netns exec "$ns" nft -j list ruleset > "$out/$name.nft.json"
    ip netns exec "$ns" iptables-nft -S > "$out/$name.ipt.txt"
    ip -n "$ns" -j link show | python3 -c 'import json,sys; print(json.dumps({str(l["ifindex"]): l["ifname"] for l in json.load(sys.stdin)}, sort_keys=True))' \
        > "$out/$name.links.json"
    ip netns del "$ns"
    ns=
    echo "$name: $(stat -c %s "$out/$name.nl") bytes of replies"
done
