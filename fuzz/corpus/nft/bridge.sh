# The bridge family: a guest-to-guest forward filter by port names, and an
# ip table with prerouting/postrouting hooks at other priorities.
set -e
nft -f - <<'NFT'
table bridge kvb {
    chain fw {
        type filter hook forward priority 0; policy accept;
        iifname { "vh1", "vh2" } accept
        oifname "vh3" drop
    }
    chain pre {
        type filter hook prerouting priority -300; policy accept;
        iifname "vh4" drop
    }
}
table ip nat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
    }
}
NFT
