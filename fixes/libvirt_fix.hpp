// Shared by the libvirt fixes (libvirt.daemon, libvirt.network-default,
// storage.pool-default) and their ops (fixes/ops_libvirt.cpp): subnet
// arithmetic and collision search, the XML kvmready defines, which daemons
// this host has and how its init system starts them. Pure functions over
// text and Facts, so tests feed them recorded /proc files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fixes/fix.hpp"
#include "util/text.hpp"

namespace kvmready::fix::lv {

// ---- IPv4 subnets -----------------------------------------------------------

struct Ipv4Net {
    uint32_t addr = 0;  // host byte order, masked to the prefix
    int prefix = 0;
    [[nodiscard]] uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
    [[nodiscard]] bool overlaps(const Ipv4Net& o) const;
    [[nodiscard]] std::string str() const;  // "192.168.122.0/24"
};

std::string ipv4_string(uint32_t host_order);
std::optional<uint32_t> parse_ipv4(const std::string& s);
// "A.B.C.D/N" (N 8..30); the address is masked to the network. nullopt on anything else.
std::optional<Ipv4Net> parse_cidr(const std::string& s);

// Something on the host that already uses addresses: a route, an interface
// address, another libvirt network.
struct UsedNet {
    Ipv4Net net;
    std::string what;  // "route 192.168.122.0/24 dev eth0", "address 10.0.0.5/24 on eth0", "libvirt network lab"
};

// /proc/net/route (default routes are skipped: they overlap everything).
std::vector<UsedNet> parse_proc_net_route(const std::string& text);
// `ip -j -4 addr show` (loopback skipped).
std::vector<UsedNet> parse_ip_addr_json(const std::string& text);
// /proc/net/fib_trie: local (/32 host LOCAL) addresses, when `ip` is missing.
std::vector<UsedNet> parse_fib_trie_locals(const std::string& text);

// Everything the host's routes, addresses and other libvirt networks (except
// `network`) occupy, as probed (ConfigFacts).
std::vector<UsedNet> used_subnets(const PlanInput& in, const std::string& network);

// The first of preferred, then 192.168.X.0/24 for X = 122..254 and 100..121,
// that overlaps nothing in `used`.
std::optional<Ipv4Net> pick_subnet(const std::vector<UsedNet>& used, const Ipv4Net& preferred);
// What in `used` overlaps net (nullptr: nothing).
const UsedNet* collision(const std::vector<UsedNet>& used, const Ipv4Net& net);

// ---- XML kvmready defines --------------------------------------------------

// A NAT network as libvirt's stock default.xml: gateway .1, DHCP .2 to the
// last host address; bridge "" lets libvirt pick virbrN.
std::string network_xml(const std::string& name, const Ipv4Net& subnet, const std::string& bridge);
std::string pool_xml(const std::string& name, const std::string& path);
// Inserts <uuid>uuid</uuid> after the top-level <name> element.
std::string with_uuid(const std::string& xml, const std::string& uuid);
using util::xml_escape;
// A random (version 4) UUID.
std::string random_uuid();

// virsh argv for display: "virsh" [-c URI] args...
std::vector<std::string> virsh(const std::string& uri, std::vector<std::string> args);

// A runtime step on the libvirt object `name` (args {"name": name}), shown as argv.
Step object_step(const std::string& op, const std::string& name, std::string summary, std::vector<std::string> argv);

// Where every network and pool plan starts. false: nothing to plan (offline,
// libvirt not installed or not asked, the daemon down and the object not
// asked for by option). Throws when it cannot be planned: the daemon does
// not answer (and libvirt.daemon is not in this run) though the object was
// asked for, its driver failed (driver_error), or the connection is read-only.
bool libvirt_plannable(const PlanInput& in, bool asked, const std::string& driver_error, const char* driver);
// The messages of the findings that name fix_id, joined with "; ".
std::string reasons(const PlanInput& in, const std::string& fix_id);

// ---- daemons -----------------------------------------------------------------

enum class InitSystem { Systemd, Sysv, None };
struct InitInfo {
    InitSystem kind = InitSystem::None;
    std::string pid1;  // /proc/1/comm
    std::string why;   // "/run/systemd/system exists", "PID 1 is init and /etc/init.d/libvirtd exists", ...
};
InitInfo detect_init(const Facts& f);

struct DaemonInfo {
    std::string name;     // libvirtd, virtlogd, virtqemud, virtnetworkd, virtstoraged
    std::string binary;   // /usr/sbin/libvirtd ("" when not installed)
    std::string pidfile;  // /run/libvirtd.pid
    std::string socket;   // where it listens once up
};
// Monolithic (virtlogd, libvirtd) or modular (virtlogd, virtqemud,
// virtnetworkd, virtstoraged), as the check names the daemon.
bool modular_daemons(const Facts& f);
std::vector<DaemonInfo> daemons_for(const Facts& f, const std::string& uri);
// The PID in the daemon's pidfile when that process runs and is that daemon.
std::optional<int> running_pid(const ConfigFacts& c, const DaemonInfo& d);

// True when the libvirt daemon does not answer now but libvirt.daemon is
// planned in the same run (so network and pool steps must look at the
// state when they run instead of at plan time).
bool daemon_fix_will_run(const PlanInput& in);

}  // namespace kvmready::fix::lv
