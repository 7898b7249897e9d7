// NetFacts: see probe_net.cpp for where each field comes from.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"

namespace kvmready {

// A device node (/dev/net/tun, /dev/vhost-net, ...) and whether a driver for
// it is registered or installed.
struct NetNode {
    std::string path;
    bool exists = false;
    std::string type;                 // "char", "file", ... when it exists
    unsigned major = 0, minor = 0;
    unsigned mode = 0;
    uint32_t uid = 0, gid = 0;
    bool registered = false;          // its minor is listed in /proc/misc (driver loaded or built in)
    bool module_installed = false;    // a .ko for the running kernel exists under /lib/modules
};

struct BridgePort {
    std::string name;
    // "physical" (has a device), "tap" (a VM's NIC), "veth", "bond", "vlan",
    // "bridge", "vxlan", "other" (from sysfs: device/uevent, tun_flags,
    // bonding/mode, bridge, uevent DEVTYPE, iflink).
    std::string kind;
    std::string operstate;
    // A physical NIC, or a bond/vlan/macvlan stacked on one (followed through
    // lower_* links): frames leave the host through it.
    bool uplink = false;
    std::string uplink_nic;           // the physical NIC under it
    std::string driver;               // a physical port's driver (device/uevent DRIVER=)
    std::string stp_port_state;       // brif/PORT/state: disabled, listening, learning, forwarding, blocking
};

struct BridgeAddress {
    std::string family;               // "inet", "inet6"
    std::string local;
    int prefixlen = 0;
    std::string scope;                // "global", "link", "host"
};

struct BridgeInfo {
    std::string name;
    std::string operstate;            // /sys/class/net/BR/operstate
    std::optional<bool> admin_up;     // IFF_UP in /sys/class/net/BR/flags
    std::optional<bool> carrier;      // /sys/class/net/BR/carrier (unreadable while admin down)
    std::optional<int> stp_state;     // bridge/stp_state: 0 off, 1 kernel STP, 2 user-space STP
    std::optional<int> forward_delay_cs;  // bridge/forward_delay, centiseconds
    // bridge/nf_call_iptables: this bridge alone sends its frames through
    // the IP firewall, whatever the global bridge-nf-call-iptables says.
    std::optional<int> nf_call_iptables;
    std::vector<BridgePort> ports;
    std::vector<BridgeAddress> addresses;  // from `ip -j addr show`; see NetFacts::addresses_known
};

// A firewall rule reduced to what decides forwarded guest traffic.
struct FwRule {
    std::string text;                 // as printed by iptables -S, or a summary of the nft rule
    std::string iif, oif;             // interface match, "" for any, "!name" when negated
    bool physdev_bridged = false;     // -m physdev --physdev-is-bridged
    bool established_only = false;    // ct state limited to related/established
    bool other_match = false;         // any other condition (-s, -d, -p, marks, sets...)
    std::string verdict;              // "accept", "drop", "reject", "jump", "goto", "return", "" (none)
    std::string target;               // chain of jump/goto
};

struct FwChain {
    std::string source;               // "iptables" or "nft"
    std::string family;               // "ip", "ip6", "inet", "bridge"
    std::string table;
    std::string name;
    bool base = false;                // hooked at forward (iptables: FORWARD)
    std::string policy;               // "accept"/"drop" for base chains
    std::vector<FwRule> rules;
};

struct FirewallFacts {
    bool probed = false;
    std::string not_probed_reason;
    // Each tool: whether it ran and, if not usable, why.
    bool iptables_ok = false;
    std::string iptables_error;
    bool nft_ok = false;
    std::string nft_error;
    std::vector<std::string> legacy_tables;  // /proc/net/ip_tables_names (legacy x_tables in use)
    // Forward base chains and every chain they jump to.
    std::vector<FwChain> chains;
};

struct NetFacts {
    bool probed = false;
    NetNode tun, vhost_net, vhost_vsock;
    std::optional<int> ip_forward;    // /proc/sys/net/ipv4/ip_forward
    std::optional<int> ipv6_forwarding;  // /proc/sys/net/ipv6/conf/all/forwarding
    // /proc/sys/net/bridge/bridge-nf-call-{iptables,ip6tables,arptables};
    // empty when br_netfilter is not loaded (in this namespace).
    std::map<std::string, int> bridge_nf;
    bool br_netfilter_loaded = false;
    std::vector<BridgeInfo> bridges;
    std::vector<std::string> physical_nics;  // interfaces with a device (for the bridge commands)
    bool addresses_known = false;     // `ip -j addr show` ran and parsed
    std::string addresses_error;
    FirewallFacts firewall;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NetNode, path, exists, type, major, minor, mode, uid, gid, registered, module_installed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BridgePort, name, kind, operstate, uplink, uplink_nic, driver, stp_port_state)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BridgeAddress, family, local, prefixlen, scope)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BridgeInfo, name, operstate, admin_up, carrier, stp_state, forward_delay_cs, nf_call_iptables, ports,
                                                addresses)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FwRule, text, iif, oif, physdev_bridged, established_only, other_match, verdict,
                                                target)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FwChain, source, family, table, name, base, policy, rules)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FirewallFacts, probed, not_probed_reason, iptables_ok, iptables_error, nft_ok,
                                                nft_error, legacy_tables, chains)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NetFacts, probed, tun, vhost_net, vhost_vsock, ip_forward, ipv6_forwarding, bridge_nf,
                                                br_netfilter_loaded, bridges, physical_nics, addresses_known, addresses_error, firewall)

// Parsers shared by the probe and the tests (pure text -> data).
std::vector<FwChain> parse_iptables_save(const std::string& text);  // `iptables -S` of the filter table
std::vector<FwChain> parse_nft_json(const std::string& text);        // `nft -j list ruleset`
std::vector<FwChain> parse_nft_ruleset(const nlohmann::json& ruleset);  // the same, parsed (host::NftRuleset)
// Keeps the forward base chains and the chains reachable from them.
std::vector<FwChain> forward_reachable(std::vector<FwChain> chains);

}  // namespace kvmready
