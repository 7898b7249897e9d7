# nft's own inet table: a base chain with a drop policy, anonymous and named
# interface sets (exact names and prefixes), ct state, iif/oif by index,
# jumps, gotos, returns, a verdict map, other statements.
set -e
ip link add d0 type veth peer name d1
nft -f - <<'NFT'
table inet kvt {
    set ports { type ifname; elements = { "vnet0", "vnet1" } }
    set pfx { type ifname; flags interval; elements = { "tap*", "eth0" } }
    chain fw {
        type filter hook forward priority 10; policy drop;
        iifname { "virbr0", "br*" } oifname != "x" ct state established,related accept
        oifname { "virbr0", "docker0" } drop
        iifname != { "lo", "eth0" } jump sub
        iifname @ports accept
        oifname @pfx drop
        ct state established accept
        ct state != established accept
        ct state invalid drop
        iifname "virbr*" oifname "virbr0" counter accept
        iif "lo" accept
        oif "d0" drop
        iif != "d0" jump sub
        ip saddr 10.0.0.0/8 log drop
        meta l4proto udp reject
        iifname vmap { "virbr0" : accept, "docker0" : drop }
        goto sub
    }
    chain sub {
        meta mark set 3 return
        limit rate 3/second drop
        return
    }
    chain in {
        type filter hook input priority 0; policy accept;
        iif "lo" accept
    }
}
NFT
