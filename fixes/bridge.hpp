// net.bridge: the pieces shared by the fix (fixes/bridge.cpp), its ops
// (fixes/ops_bridge.cpp) and the tests. Everything here is pure (text and
// JSON in, text and data out) except read_link, which runs `ip -j`.
//
// The runtime change is one `ip -batch` (create the bridge, enslave the
// uplink, move its addresses and routes), watched by a detached watchdog
// that runs the reverse batch unless the run confirms a connectivity probe
// in time. The persistent configuration is written for the stack the host
// uses (ifupdown, systemd-networkd, netplan, NetworkManager) only after that.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_optional.hpp"
#include "host/process.hpp"

namespace kvmready::fix::bridge {

// ---- runtime state --------------------------------------------------------

struct Addr {
    std::string family;   // "inet", "inet6"
    std::string local;
    int prefixlen = 0;
    std::string broadcast;
    std::string scope;    // "global", "link", "host", "site"
    bool dynamic = false;  // from DHCP/SLAAC: lifetimes are finite
    bool noprefixroute = false;
    uint64_t valid_lft = 0xffffffff, preferred_lft = 0xffffffff;
};

struct Route {
    std::string family;   // "inet", "inet6"
    std::string type;     // "" unicast, else "blackhole", "unreachable", ...
    std::string dst;      // "default" or a prefix
    std::string gateway;
    std::string protocol; // "" (boot), "static", "dhcp", "ra", "kernel", ...
    std::string scope;
    std::string prefsrc;
    std::string table;    // "" main
    std::optional<uint64_t> metric;
    bool onlink = false;
};

struct LinkState {
    bool exists = false;
    std::string name, mac, master, kind;  // kind: "bridge", "veth", "" (plain device)
    bool up = false;
    std::vector<Addr> addrs;              // scope global/site only (link-local stays where it is)
    std::vector<Route> routes;            // main and other tables, no local/broadcast, no kernel routes
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Addr, family, local, prefixlen, broadcast, scope, dynamic, noprefixroute, valid_lft,
                                                preferred_lft)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Route, family, type, dst, gateway, protocol, scope, prefsrc, table, metric, onlink)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LinkState, exists, name, mac, master, kind, up, addrs, routes)

// From `ip -j -d link show dev X`, `ip -j addr show dev X` and
// `ip -j -4/-6 route show table all dev X` output.
LinkState parse_link_state(const std::string& link_json, const std::string& addr_json, const std::string& routes4_json,
                           const std::string& routes6_json);
using Runner = std::function<host::RunResult(const std::vector<std::string>&)>;
// Runs `ip -j ...` through run; exists=false when the link does not exist.
LinkState read_link(const Runner& run, const std::string& name);

// What one uplink move does; everything the reverse needs is in here too.
struct Move {
    std::string bridge, uplink;
    bool create_bridge = true;     // false: the bridge exists (no uplink yet)
    std::string mac;               // the uplink's MAC, given to the bridge (DHCP leases and ARP caches stay valid)
    std::string bridge_old_mac;    // when the bridge existed: its MAC before
    std::vector<Addr> addrs;
    std::vector<Route> routes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Move, bridge, uplink, create_bridge, mac, bridge_old_mac, addrs, routes)

// `ip -batch` lines (without the leading "ip"). The forward batch stops at
// its first error; the reverse one runs with -force (does what it can).
std::vector<std::string> forward_batch(const Move& m);
std::vector<std::string> reverse_batch(const Move& m);
// The same as argv for people: {"ip","link","add",...} per line.
std::vector<std::vector<std::string>> batch_argv(const std::vector<std::string>& lines);
// Where the connectivity probe aims: the IPv4 default gateway, else the
// IPv6 one, else "" (then only the bridge's carrier is checked).
std::string probe_target(const Move& m);

// ---- the stack that owns the network configuration -------------------------

enum class Stack { None, Ifupdown, Networkd, Netplan, NetworkManager };
const char* to_string(Stack s);

// Read-only view of the target: file contents and directory listings (under
// --root when given), and whether services run (live only).
struct Target {
    std::function<std::optional<std::string>(const std::string&)> read;
    std::function<std::vector<std::string>(const std::string&)> list;  // names in a directory
    bool live = true;
};

struct StackInfo {
    Stack stack = Stack::None;
    bool running = false;          // the daemon runs (live only)
    std::string evidence;          // "NetworkManager runs (/run/NetworkManager/NetworkManager.pid)", ...
    bool ifupdown2 = false;
    bool bridge_support = true;    // ifupdown: bridge-utils' hook (or ifupdown2) is installed
};
StackInfo detect_stack(const Target& t, const std::string& uplink);

// A generated file: path and the whole content.
struct File {
    std::string path;
    std::optional<std::string> before;  // nullopt: does not exist yet
    std::string content;
};

struct Persist {
    bool done = false;             // the configuration already says what we want
    std::vector<File> files;       // files to write (only those that change)
    std::vector<std::string> notes;
};

constexpr const char* kMarker = "kvmready fix net.bridge";

// ifupdown: an interfaces.d/BR file (or a stanza appended to
// /etc/network/interfaces when it sources no interfaces.d), and the uplink's
// stanzas turned into `inet manual` with their options moved to the bridge.
Persist ifupdown_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac);
// systemd-networkd: 10-kvmready-BR.netdev/.network and a .network for the
// uplink that sorts before the one that configured it (whose [Network],
// [Address], [Route], ... sections move to the bridge's file).
Persist networkd_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac,
                        const std::string& uplink_network_file = "");
// netplan: /etc/netplan/60-kvmready-BR.yaml with the bridge; the uplink's
// IP settings are moved out of the yaml file that defines it.
Persist netplan_config(const Target& t, const std::string& bridge, const std::string& uplink, const std::string& mac);
// NetworkManager: nmcli commands (run under a checkpoint that rolls back by itself).
struct NmPlan {
    bool done = false;
    std::vector<std::vector<std::string>> apply;  // in order
    std::vector<std::vector<std::string>> undo;
    std::string old_connection;                   // the uplink's active connection, moved
};
NmPlan nm_commands(const Runner& run, const std::string& bridge, const std::string& uplink, const std::string& mac);

// ---- small parsers (exposed for tests) --------------------------------------

// systemd INI: sections in order, keys in order (repeated keys kept).
struct IniSection {
    std::string name;
    std::vector<std::pair<std::string, std::string>> keys;
};
std::vector<IniSection> parse_ini(const std::string& text);
// Does a .network file's [Match] select this interface?
bool network_matches(const std::vector<IniSection>& ini, const std::string& ifname, const std::string& mac);

}  // namespace kvmready::fix::bridge
