// See libvirt_fix.hpp.
#include "fixes/libvirt_fix.hpp"
#include "util/text.hpp"

#include <arpa/inet.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kvmready::fix::lv {

// ---- IPv4 ------------------------------------------------------------------

bool Ipv4Net::overlaps(const Ipv4Net& o) const {
    const int p = std::min(prefix, o.prefix);
    const uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
    return (addr & m) == (o.addr & m);
}

std::string ipv4_string(uint32_t a) { return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255); }

std::string Ipv4Net::str() const { return ipv4_string(addr) + "/" + std::to_string(prefix); }

std::optional<uint32_t> parse_ipv4(const std::string& s) {
    uint32_t out = 0;
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        unsigned v = 0;
        size_t digits = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            v = v * 10 + static_cast<unsigned>(s[i++] - '0');
            if (++digits > 3 || v > 255) return std::nullopt;
        }
        out = out << 8 | v;
        if (++parts < 4) {
            if (i >= s.size() || s[i] != '.') return std::nullopt;
            ++i;
        }
    }
    if (i != s.size()) return std::nullopt;
    return out;
}

std::optional<Ipv4Net> parse_cidr(const std::string& s) {
    const auto slash = s.find('/');
    if (slash == std::string::npos) return std::nullopt;
    auto a = parse_ipv4(s.substr(0, slash));
    const std::string p = s.substr(slash + 1);
    if (!a || p.empty() || p.size() > 2 || !std::all_of(p.begin(), p.end(), ::isdigit)) return std::nullopt;
    Ipv4Net n;
    n.prefix = std::stoi(p);
    if (n.prefix < 8 || n.prefix > 30) return std::nullopt;
    n.addr = *a & n.mask();
    return n;
}

namespace {

int prefix_of(uint32_t mask) {
    int p = 0;
    while (p < 32 && (mask & (uint32_t{1} << (31 - p)))) ++p;
    return p;
}

using util::trim;

}  // namespace

std::vector<UsedNet> parse_proc_net_route(const std::string& text) {
    std::vector<UsedNet> out;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string iface, dest, gw, flags, refcnt, use, metric, mask;
        if (!(f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
        uint32_t d = 0, m = 0;
        try {
            // The kernel prints the __be32 as a native integer: its bytes in
            // memory are the address in network order.
            d = ntohl(static_cast<uint32_t>(std::stoul(dest, nullptr, 16)));
            m = ntohl(static_cast<uint32_t>(std::stoul(mask, nullptr, 16)));
        } catch (...) {
            continue;
        }
        if (m == 0) continue;  // default route
        Ipv4Net n;
        n.prefix = prefix_of(m);
        n.addr = d & n.mask();
        out.push_back({n, fmt::format("route {} dev {}", n.str(), iface)});
    }
    return out;
}

std::vector<UsedNet> parse_ip_addr_json(const std::string& text) {
    std::vector<UsedNet> out;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_array()) return out;
    for (const auto& link : j) {
        if (!link.is_object()) continue;
        const std::string ifname = link.value("ifname", "");
        if (ifname == "lo") continue;
        if (!link.contains("addr_info") || !link["addr_info"].is_array()) continue;
        for (const auto& a : link["addr_info"]) {
            if (!a.is_object() || a.value("family", "") != "inet") continue;
            auto ip = parse_ipv4(a.value("local", ""));
            if (!ip || (*ip >> 24) == 127) continue;
            Ipv4Net n;
            n.prefix = a.value("prefixlen", 32);
            if (n.prefix < 0 || n.prefix > 32) continue;
            n.addr = *ip & n.mask();
            out.push_back({n, fmt::format("address {}/{} on {}", ipv4_string(*ip), n.prefix, ifname)});
        }
    }
    return out;
}

std::vector<UsedNet> parse_fib_trie_locals(const std::string& text) {
    std::vector<UsedNet> out;
    std::istringstream in(text);
    std::string line, last;
    while (std::getline(in, line)) {
        const std::string t = trim(line);
        if (t.rfind("|-- ", 0) == 0) {
            last = t.substr(4);
        } else if (t.find("/32 host LOCAL") != std::string::npos && !last.empty()) {
            auto ip = parse_ipv4(last);
            if (ip && (*ip >> 24) != 127) {
                Ipv4Net n{*ip, 32};
                const std::string what = "local address " + ipv4_string(*ip);
                if (std::none_of(out.begin(), out.end(), [&](const UsedNet& u) { return u.what == what; })) out.push_back({n, what});
            }
        }
    }
    return out;
}

std::vector<UsedNet> used_subnets(const PlanInput& in, const std::string& network) {
    std::vector<UsedNet> out;
    const ConfigFacts& c = in.config();
    if (!c.files.count("/proc/net/route"))
        throw std::runtime_error(
            "this host's routes and addresses are not recorded (bundles and recordings leave them out: they identify the "
            "host), so a free subnet cannot be chosen here: plan this fix on the host itself");
    if (const auto& r = c.file("/proc/net/route").content) {
        auto v = parse_proc_net_route(*r);
        out.insert(out.end(), v.begin(), v.end());
    }
    // Addresses on interfaces that are down have no route yet, but libvirt
    // refuses a network that overlaps them all the same.
    auto r = c.command({"ip", "-j", "-4", "addr", "show"});
    if (r.exit_code == 0) {
        auto v = parse_ip_addr_json(r.out);
        out.insert(out.end(), v.begin(), v.end());
    } else if (const auto& t = c.file("/proc/net/fib_trie").content) {
        auto v = parse_fib_trie_locals(*t);
        out.insert(out.end(), v.begin(), v.end());
    }
    for (const auto& n : in.facts.virt.libvirt.networks) {
        if (n.name == network) continue;
        for (const auto& a : n.addresses) {
            const auto slash = a.find('/');
            auto ip = parse_ipv4(a.substr(0, slash));
            if (!ip || slash == std::string::npos) continue;
            Ipv4Net x;
            try {
                x.prefix = std::stoi(a.substr(slash + 1));
            } catch (...) {
                continue;
            }
            if (x.prefix < 0 || x.prefix > 32) continue;
            x.addr = *ip & x.mask();
            out.push_back({x, fmt::format("libvirt network {} ({}{})", n.name, x.str(), n.active ? "" : ", inactive")});
        }
    }
    return out;
}

const UsedNet* collision(const std::vector<UsedNet>& used, const Ipv4Net& net) {
    for (const auto& u : used)
        if (u.net.overlaps(net)) return &u;
    return nullptr;
}

std::optional<Ipv4Net> pick_subnet(const std::vector<UsedNet>& used, const Ipv4Net& preferred) {
    if (!collision(used, preferred)) return preferred;
    std::vector<int> thirds;
    for (int x = 122; x <= 254; ++x) thirds.push_back(x);
    for (int x = 100; x < 122; ++x) thirds.push_back(x);
    for (int x : thirds) {
        Ipv4Net n{(192u << 24) | (168u << 16) | (static_cast<uint32_t>(x) << 8), 24};
        if (!collision(used, n)) return n;
    }
    return std::nullopt;
}

// ---- XML -------------------------------------------------------------------

std::string network_xml(const std::string& name, const Ipv4Net& subnet, const std::string& bridge) {
    const uint32_t gw = subnet.addr + 1;
    const uint32_t first = subnet.addr + 2;
    const uint32_t last = (subnet.addr | ~subnet.mask()) - 1;
    std::string out = "<network>\n  <name>" + xml_escape(name) + "</name>\n  <forward mode='nat'/>\n";
    out += bridge.empty() ? "  <bridge stp='on' delay='0'/>\n" : "  <bridge name='" + xml_escape(bridge) + "' stp='on' delay='0'/>\n";
    Ipv4Net m;
    m.prefix = subnet.prefix;
    out += fmt::format("  <ip address='{}' netmask='{}'>\n    <dhcp>\n      <range start='{}' end='{}'/>\n    </dhcp>\n  </ip>\n",
                       ipv4_string(gw), ipv4_string(m.mask()), ipv4_string(first), ipv4_string(last));
    out += "</network>\n";
    return out;
}

std::string pool_xml(const std::string& name, const std::string& path) {
    return "<pool type='dir'>\n  <name>" + xml_escape(name) + "</name>\n  <target>\n    <path>" + xml_escape(path) +
           "</path>\n  </target>\n</pool>\n";
}

std::string with_uuid(const std::string& xml, const std::string& uuid) {
    const auto end = xml.find("</name>");
    if (end == std::string::npos) return xml;
    const auto at = end + 7;
    return xml.substr(0, at) + "\n  <uuid>" + uuid + "</uuid>" + xml.substr(at);
}

std::string random_uuid() {
    unsigned char b[16];
    if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
        // getrandom cannot fail for 16 bytes once the pool is initialised;
        // a fallback that is unique enough for an ownership token.
        for (size_t i = 0; i < sizeof b; ++i) b[i] = static_cast<unsigned char>((::getpid() * 2654435761u) >> (i % 4 * 8) ^ i * 37);
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    std::string s;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        s += fmt::format("{:02x}", b[i]);
    }
    return s;
}

std::vector<std::string> virsh(const std::string& uri, std::vector<std::string> args) {
    std::vector<std::string> out = {"virsh"};
    if (!uri.empty() && uri != "qemu:///system") {
        out.push_back("-c");
        out.push_back(uri);
    }
    out.insert(out.end(), args.begin(), args.end());
    return out;
}

Step object_step(const std::string& op, const std::string& name, std::string summary, std::vector<std::string> argv) {
    Step s;
    s.op = op;
    s.summary = std::move(summary);
    s.runtime = true;
    s.commands = {std::move(argv)};
    s.args = {{"name", name}};
    return s;
}

bool libvirt_plannable(const PlanInput& in, bool asked, const std::string& driver_error, const char* driver) {
    const auto& l = in.facts.virt.libvirt;
    if (in.offline() || !in.facts.virt.probed || !l.queried) return false;
    const auto& s = l.snapshot;
    const std::string& uri = in.options.connect_uri;
    if (!s.connected) {
        if (!l.installed) return false;
        if (daemon_fix_will_run(in)) return true;
        if (!asked) return false;  // libvirt.daemon says why
        throw std::runtime_error(fmt::format("libvirt does not answer at {} ({}): nothing was changed; {}", uri,
                                             s.error.empty() ? "not connected" : s.error,
                                             s.timed_out ? "the daemon runs but hangs: see `kvmready check libvirt.daemon`"
                                                         : "start the daemon first (libvirt.daemon)"));
    }
    if (!driver_error.empty()) throw std::runtime_error(fmt::format("libvirt's {} driver did not answer: {}", driver, driver_error));
    if (!s.read_write)
        throw std::runtime_error(
            fmt::format("libvirt at {} allows this user read-only access ({}): run kvmready fix as root", uri, s.read_write_error));
    return true;
}

std::string reasons(const PlanInput& in, const std::string& fix_id) {
    std::string out;
    for (const auto* w : in.wanting(fix_id)) out += (out.empty() ? "" : "; ") + w->message;
    return out;
}

// ---- daemons ---------------------------------------------------------------

InitInfo detect_init(const Facts& f) {
    const ConfigFacts& c = f.config;
    InitInfo i;
    i.pid1 = trim(c.file("/proc/1/comm").content.value_or(""));
    if (f.virt.libvirt.systemd || c.exists("/run/systemd/system")) {
        i.kind = InitSystem::Systemd;
        i.why = "/run/systemd/system exists (systemd is PID 1)";
        return i;
    }
    if (i.pid1 == "init") {
        for (const char* s : {"/etc/init.d/libvirtd", "/etc/init.d/virtqemud"})
            if (c.exists(s)) {
                i.kind = InitSystem::Sysv;
                i.why = fmt::format("PID 1 is init (sysvinit) and {} exists", s);
                return i;
            }
        i.why = "PID 1 is init, but no /etc/init.d/libvirtd script is installed";
        return i;
    }
    i.why = i.pid1.empty() ? "no /run/systemd/system and /proc/1/comm unreadable"
                           : fmt::format("PID 1 is {}, neither systemd nor sysvinit", i.pid1);
    return i;
}

bool modular_daemons(const Facts& f) {
    const auto& s = f.virt.libvirt.snapshot;
    if (!s.daemon.empty()) return s.daemon != "libvirtd";
    for (const auto& b : f.virt.libvirt.daemon_binaries)
        if (b.find("virtqemud") != std::string::npos) return true;
    return false;
}

std::vector<DaemonInfo> daemons_for(const Facts& f, const std::string& uri) {
    std::vector<std::string> names = {"virtlogd"};
    if (modular_daemons(f)) names.insert(names.end(), {"virtqemud", "virtnetworkd", "virtstoraged"});
    else names.push_back("libvirtd");
    const std::string uri_socket = host::libvirt_socket_for(uri, nullptr);
    std::vector<DaemonInfo> out;
    for (const auto& n : names) {
        DaemonInfo d;
        d.name = n;
        for (const auto& b : f.virt.libvirt.daemon_binaries)
            if (b.size() >= n.size() + 1 && b.compare(b.size() - n.size() - 1, std::string::npos, "/" + n) == 0) d.binary = b;
        for (const char* dir : kSbinDirs) {
            if (!d.binary.empty()) break;
            if (f.config.exists(dir + n)) d.binary = dir + n;
        }
        d.pidfile = "/run/" + n + ".pid";
        d.socket = n == "libvirtd" ? "/run/libvirt/libvirt-sock" : "/run/libvirt/" + n + "-sock";
        // The daemon the URI leads to must listen where the URI looks.
        const bool main = n == "libvirtd" || n == "virtqemud";
        if (main && !uri_socket.empty() && uri.find("socket=") != std::string::npos) d.socket = uri_socket;
        out.push_back(d);
    }
    return out;
}

std::optional<int> running_pid(const ConfigFacts& c, const DaemonInfo& d) {
    const auto& text = c.file(d.pidfile).content;
    if (!text) return std::nullopt;
    const auto found = pidfile_pid(*text);
    if (!found) return std::nullopt;
    const int pid = *found;
    const std::string comm = trim(c.file(fmt::format("/proc/{}/comm", pid)).content.value_or(""));
    if (comm.empty() || comm != d.name.substr(0, 15)) return std::nullopt;
    // A zombie waiting for its parent is not running.
    const std::string stat = c.file(fmt::format("/proc/{}/stat", pid)).content.value_or("");
    const auto p = stat.rfind(')');
    if (p != std::string::npos && p + 2 < stat.size() && (stat[p + 2] == 'Z' || stat[p + 2] == 'X')) return std::nullopt;
    return pid;
}

bool daemon_fix_will_run(const PlanInput& in) {
    if (in.facts.virt.libvirt.snapshot.connected) return false;
    if (in.wanting(ids::fix::libvirt_daemon.text).empty()) return false;
    const auto& only = in.options.only;
    return only.empty() || std::find(only.begin(), only.end(), "libvirt.daemon") != only.end();
}

}  // namespace kvmready::fix::lv
