# iptables-nft as libvirt and Docker leave it: policies, user chains, jumps
# and gotos, conntrack/state, physdev, comment, interface prefixes, targets.
set -e
ipt=iptables-nft
$ipt -P FORWARD DROP
$ipt -P INPUT ACCEPT
for c in LIBVIRT_FWX LIBVIRT_FWI LIBVIRT_FWO DOCKER-USER; do $ipt -N $c; done
$ipt -A FORWARD -j DOCKER-USER
$ipt -A FORWARD -j LIBVIRT_FWX
$ipt -A FORWARD -j LIBVIRT_FWI
$ipt -A FORWARD -j LIBVIRT_FWO
$ipt -A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT
$ipt -A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
$ipt -A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
$ipt -A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT
$ipt -A LIBVIRT_FWO -i virbr0 -j REJECT
$ipt -A DOCKER-USER -j RETURN
$ipt -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
$ipt -A FORWARD -o docker0 -m conntrack --ctstate NEW,ESTABLISHED,UNTRACKED -j ACCEPT
$ipt -A FORWARD -o docker0 -m conntrack ! --ctstate INVALID -j ACCEPT
$ipt -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
$ipt -A FORWARD -i dock+ -m state --state ESTABLISHED -j DROP
$ipt -A FORWARD -m physdev --physdev-is-bridged -j ACCEPT
$ipt -A FORWARD -m physdev ! --physdev-is-bridged -j DROP
$ipt -A FORWARD -i virbr0 -m comment --comment "guests of virbr0" -j LOG
$ipt -A FORWARD -i virbr0 -p tcp --dport 22 -j DROP
$ipt -A FORWARD -i virbr0 -g LIBVIRT_FWX
$ipt -t mangle -A FORWARD -o virbr0 -j DROP
$ipt -t nat -A POSTROUTING -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE
