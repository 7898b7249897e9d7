// probe_virt: QEMU, libvirt and storage facts. Runs on its own thread beside
// the rest of the probe and writes only f.virt. The libvirt query is bounded
// by ProbeOptions::libvirt_timeout_ms; `qemu --version` runs only when libvirt
// did not report that emulator's version, beside the remaining file reads.
// Nothing here may throw: an exception on this thread would end the process.
#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "core/mountinfo.hpp"
#include "core/probe.hpp"
#include "core/xml.hpp"
#include "util/text.hpp"

namespace kvmready {

namespace {

using util::trim;

// Numbers from files and XML: malformed input must not throw on the probe's thread.
std::optional<uint32_t> to_u32(const std::string& s, int base = 10) {
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// ---- Probing ----

std::vector<std::string> qemu_candidates(const std::string& arch) {
    std::string sys = arch;
    if (arch == "i686" || arch == "i586" || arch == "i386") sys = "i386";
    else if (arch == "ppc64le") sys = "ppc64";
    else if (arch == "armv7l") sys = "arm";
    std::vector<std::string> out = {"/usr/bin/qemu-system-" + sys, "/usr/local/bin/qemu-system-" + sys};
    // RHEL/CentOS ship only /usr/libexec/qemu-kvm; Debian's /usr/bin/kvm is a
    // wrapper script around qemu-system-x86_64, so it comes last.
    if (sys == "x86_64" || sys == "aarch64" || sys == "s390x" || sys == "ppc64") {
        out.push_back("/usr/libexec/qemu-kvm");
        out.push_back("/usr/bin/qemu-kvm");
    }
    if (sys == "x86_64") out.push_back("/usr/bin/kvm");
    return out;
}

VirtPath path_info(const host::Host& h, const std::string& path) {
    VirtPath p;
    p.path = path;
    const host::StatInfo st = h.stat(path);
    p.exists = st.exists;
    p.error = st.error;
    p.type = st.type;
    p.mode = st.mode;
    p.uid = st.uid;
    p.gid = st.gid;
    if (st.exists)
        if (auto acl = h.acl(path)) {
            p.acl.emplace();
            for (const auto& e : *acl) p.acl->push_back(VirtAcl{e.tag, e.id, e.perms});
        }
    return p;
}

// "/", "/var", "/var/lib", ... path: QEMU needs search permission on each.
std::vector<std::string> ancestors(const std::string& path) {
    std::vector<std::string> out = {"/"};
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos == path.size() || path[pos] == '/') {
            std::string prefix = path.substr(0, pos);
            if (prefix.size() > 1 && prefix != out.back()) out.push_back(prefix);
        }
    }
    return out;
}

void probe_dir(const host::Host& h, const std::string& path, const std::string& why, const MountTable& mounts,
               StorageDirFacts& out) {
    out.path = path;
    out.why = why;
    if (path.empty() || path[0] != '/') return;
    for (const auto& p : ancestors(path)) out.chain.push_back(path_info(h, p));
    if (!out.chain.back().exists) return;
    out.usage = h.fs_usage(path);
    out.usage_read = out.usage.ok;
    if (const Mount* m = mount_covering(mounts.mounts, path)) {
        out.fstype = m->entry.fstype;
        out.mount_point = m->entry.mountpoint;
    }
}

void probe_qemu_user(const host::Host& h, QemuUserFacts& q) {
    int err = 0;
    auto conf = h.read_file(q.conf_path, &err);
    // Debian's qemu.conf is 0600 root: unreadable, it still exists. Which
    // user QEMU runs as is then not known to this user: user stays empty
    // (not the "assumed" root below), and kvm.qemu-user-access says unknown.
    if (!conf && (err == EACCES || err == EPERM)) {
        q.libvirt_qemu_driver = true;
        q.user_source = q.conf_path + " is not readable by this user (permission denied, " + (err == EACCES ? "EACCES" : "EPERM") + ")";
        return;
    }
    q.libvirt_qemu_driver = conf.has_value();
    if (conf) parse_qemu_conf(*conf, q);
    if (q.user.empty()) {
        q.user = "root";
        q.user_source = "assumed (libvirt's upstream default; qemu.conf names none)";
    }
    if (q.group.empty()) {
        q.group = "root";
        q.group_source = "assumed (libvirt's upstream default; qemu.conf names none)";
    }
    const std::string group_db = h.read_file("/etc/group").value_or("");
    std::optional<host::User> u;
    // "+N" is a uid, a bare number is a name first and a uid second (as libvirt parses it).
    const bool plus = !q.user.empty() && q.user[0] == '+';
    const std::string id = plus ? q.user.substr(1) : q.user;
    if (!plus) u = h.lookup_user(id);
    if (!u)
        if (auto uid = to_u32(id)) u = host::lookup_uid_in_db(h.read_file("/etc/passwd").value_or(""), group_db, *uid);
    if (!u) {
        q.lookup_error = "user " + q.user + " does not exist";
        return;
    }
    q.found = true;
    q.uid = u->uid;
    q.gid = u->gid;
    // libvirt gives QEMU the configured group, the user's primary group and
    // the user's supplementary groups (virGetGroupList).
    std::optional<uint32_t> conf_gid;
    const bool gplus = !q.group.empty() && q.group[0] == '+';
    const std::string gid_text = gplus ? q.group.substr(1) : q.group;
    std::istringstream in(group_db);
    for (std::string line; std::getline(in, line);) {
        auto a = line.find(':');
        auto b = a == std::string::npos ? a : line.find(':', a + 1);
        auto c = b == std::string::npos ? b : line.find(':', b + 1);
        if (c == std::string::npos) continue;
        if (!gplus && line.substr(0, a) == gid_text) {
            conf_gid = to_u32(line.substr(b + 1, c - b - 1));
            break;
        }
    }
    if (!conf_gid) conf_gid = to_u32(gid_text);
    if (conf_gid) {
        q.gid = *conf_gid;
        q.gids.push_back(*conf_gid);
    } else {
        q.lookup_error = "group " + q.group + " does not exist";
    }
    if (std::find(q.gids.begin(), q.gids.end(), u->gid) == q.gids.end()) q.gids.push_back(u->gid);
    for (const auto& g : u->groups) {
        if (std::find(q.gids.begin(), q.gids.end(), g.gid) == q.gids.end()) q.gids.push_back(g.gid);
        q.group_names.push_back(g.name.empty() ? std::to_string(g.gid) : g.name);
    }
    if (conf_gid && std::find(q.group_names.begin(), q.group_names.end(), q.group) == q.group_names.end())
        q.group_names.insert(q.group_names.begin(), q.group);
}

// Whether to ask libvirt at all (and the facts that decide it).
bool libvirt_worth_asking(const host::Host& h, const ProbeOptions& opt, LibvirtFacts& l) {
    for (const char* bin : {"/usr/sbin/libvirtd", "/usr/sbin/virtqemud", "/usr/bin/libvirtd", "/usr/bin/virtqemud"})
        if (h.stat(bin).exists) l.daemon_binaries.push_back(bin);
    l.installed = !l.daemon_binaries.empty() || h.stat("/etc/libvirt").exists;
    l.systemd = h.stat("/run/systemd/system").exists;
    l.queried = true;
    if (!l.installed && opt.request.connect_uri == "qemu:///system") {
        // Nothing to ask, and loading libvirt's client costs more than the answer.
        l.snapshot.uri = opt.request.connect_uri;
        l.snapshot.not_attempted_reason = "libvirt is not installed";
        return false;
    }
    return true;
}

void take_libvirt_answer(host::LibvirtSnapshot s, const std::string& arch, LibvirtFacts& l) {
    if (s.connected) {
        if (!s.domcaps_kvm_xml.empty()) l.domcaps_kvm = parse_domcaps(s.domcaps_kvm_xml);
        else l.domcaps_kvm.error = s.domcaps_kvm_error;
        if (!s.domcaps_qemu_xml.empty()) l.domcaps_qemu = parse_domcaps(s.domcaps_qemu_xml);
        else l.domcaps_qemu.error = s.domcaps_qemu_error;
        if (!s.capabilities_xml.empty()) parse_capabilities(s.capabilities_xml, arch, l.machine_types, l.guest_domain_types);
        for (const auto& n : s.networks) {
            VirtNetwork v;
            v.name = n.name;
            v.active = n.active;
            v.autostart = n.autostart;
            v.persistent = n.persistent;
            parse_network_xml(n.xml, v);
            l.networks.push_back(std::move(v));
        }
        for (const auto& p : s.pools) {
            VirtPool v;
            v.name = p.name;
            v.active = p.active;
            v.autostart = p.autostart;
            v.persistent = p.persistent;
            v.state = p.state;
            v.capacity = p.capacity;
            v.allocation = p.allocation;
            v.available = p.available;
            parse_pool_xml(p.xml, v);
            l.pools.push_back(std::move(v));
        }
    }
    // The XML is parsed above and kept verbatim in recordings; facts stay small.
    s.capabilities_xml.clear();
    s.domcaps_kvm_xml.clear();
    s.domcaps_qemu_xml.clear();
    for (auto& n : s.networks) n.xml.clear();
    for (auto& p : s.pools) p.xml.clear();
    l.snapshot = std::move(s);
}

}  // namespace

// ---- Parsers ----

DomCapsFacts parse_domcaps(const std::string& xml) {
    DomCapsFacts d;
    std::string err;
    auto root = parse_xml(xml, err);
    if (!root || root->name != "domainCapabilities") {
        d.error = root ? "not a <domainCapabilities> document" : "unreadable domain capabilities XML: " + err;
        return d;
    }
    d.present = true;
    d.path = root->child_text("path");
    d.domain = root->child_text("domain");
    d.machine = root->child_text("machine");
    d.arch = root->child_text("arch");
    if (const auto* v = root->child("vcpu")) {
        const std::string max = v->attr("max");
        if (auto n = to_u32(max); n && *n < 1u << 30) d.max_vcpus = static_cast<int>(*n);
    }
    if (const auto* os = root->child("os"); os && os->attr("supported") != "no") {
        d.firmware = os->enum_values("firmware");
        if (const auto* loader = os->child("loader"); loader && loader->attr("supported") != "no") {
            for (const auto* v : loader->all("value")) d.loaders.push_back(trim(v->text));
            const auto secure = loader->enum_values("secure");
            d.secure_boot = std::find(secure.begin(), secure.end(), "yes") != secure.end();
        }
    }
    if (const auto* cpu = root->child("cpu"))
        for (const auto* m : cpu->all("mode")) {
            if (m->attr("supported") != "yes") continue;
            d.cpu_modes.push_back(m->attr("name"));
            if (m->attr("name") != "host-model") continue;
            d.host_model = m->child_text("model");
            d.host_model_vendor = m->child_text("vendor");
            for (const auto* f : m->all("feature")) d.host_model_features.emplace_back(f->attr("policy"), f->attr("name"));
        }
    return d;
}

void parse_capabilities(const std::string& xml, const std::string& arch, std::vector<std::string>& machines,
                        std::vector<std::string>& domain_types) {
    std::string err;
    auto root = parse_xml(xml, err);
    if (!root) return;
    auto add = [](std::vector<std::string>& v, const std::string& s) {
        if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
    };
    for (const auto* g : root->all("guest")) {
        if (g->child_text("os_type") != "hvm") continue;
        const auto* a = g->child("arch");
        if (!a || a->attr("name") != arch) continue;
        for (const auto* m : a->all("machine")) {
            add(machines, trim(m->text));  // aliases (pc, q35) carry canonical='...'
        }
        for (const auto* d : a->all("domain")) {
            add(domain_types, d->attr("type"));
            for (const auto* m : d->all("machine")) add(machines, trim(m->text));
        }
    }
}

void parse_network_xml(const std::string& xml, VirtNetwork& out) {
    std::string err;
    auto root = parse_xml(xml, err);
    if (!root) return;
    if (const auto* b = root->child("bridge")) out.bridge = b->attr("name");
    if (const auto* f = root->child("forward")) {
        // <forward/> without a mode is NAT (libvirt's default).
        out.forward_mode = f->has_attr("mode") ? f->attr("mode") : "nat";
        out.forward_dev = f->attr("dev");
    }
    for (const auto* ip : root->all("ip")) {
        std::string addr = ip->attr("address");
        if (addr.empty()) continue;
        std::string prefix = ip->attr("prefix");
        if (prefix.empty() && !ip->attr("netmask").empty()) {
            unsigned bits = 0;
            std::istringstream in(ip->attr("netmask"));
            for (std::string octet; std::getline(in, octet, '.');)
                bits += static_cast<unsigned>(__builtin_popcount(to_u32(octet).value_or(0) & 0xffu));
            prefix = std::to_string(bits);
        }
        out.addresses.push_back(prefix.empty() ? addr : addr + "/" + prefix);
        if (const auto* d = ip->child("dhcp"))
            for (const auto* r : d->all("range"))
                if (r->attr("start").find('.') != std::string::npos) out.dhcp_ranges.emplace_back(r->attr("start"), r->attr("end"));
    }
}

void parse_pool_xml(const std::string& xml, VirtPool& out) {
    std::string err;
    auto root = parse_xml(xml, err);
    if (!root) return;
    out.type = root->attr("type");
    if (const auto* t = root->child("target")) out.target = t->child_text("path");
}

void parse_qemu_conf(const std::string& text, QemuUserFacts& out) {
    std::istringstream in(text);
    std::string def_user, def_group;
    for (std::string line; std::getline(in, line);) {
        // Commented defaults are written flush left ("#user = \"libvirt-qemu\"");
        // the indented examples above them are not defaults.
        const bool commented = !line.empty() && line[0] == '#';
        std::string body = commented ? line.substr(1) : line;
        if (commented && (body.empty() || std::isspace(static_cast<unsigned char>(body[0])))) continue;
        body = trim(body);
        auto eq = body.find('=');
        if (eq == std::string::npos) continue;
        const std::string key = trim(body.substr(0, eq));
        std::string val = trim(body.substr(eq + 1));
        if (key != "user" && key != "group") continue;
        if (val.size() < 2 || val.front() != '"') continue;
        const auto close = val.find('"', 1);
        if (close == std::string::npos) continue;
        if (commented) {
            if (!trim(val.substr(close + 1)).empty()) continue;  // "... # an example": not the default
            (key == "user" ? def_user : def_group) = val.substr(1, close - 1);
        } else {
            (key == "user" ? out.user : out.group) = val.substr(1, close - 1);
            (key == "user" ? out.user_source : out.group_source) = "qemu.conf";
        }
    }
    if (out.user.empty() && !def_user.empty()) {
        out.user = def_user;
        out.user_source = "qemu.conf default (commented)";
    }
    if (out.group.empty() && !def_group.empty()) {
        out.group = def_group;
        out.group_source = "qemu.conf default (commented)";
    }
}

std::string parse_qemu_version(const std::string& output) {
    const auto p = output.find("version ");
    if (p == std::string::npos) return "";
    size_t b = p + 8, e = b;
    while (e < output.size() && (std::isdigit(static_cast<unsigned char>(output[e])) || output[e] == '.')) ++e;
    return output.substr(b, e - b);
}

void probe_virt(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    VirtFacts& v = f.virt;
    v.probed = true;
    // libvirt's answer is the slowest part of a check against a live daemon
    // (it works for milliseconds): ask first, before this process's other
    // threads compete with it for the CPUs, and look up the rest meanwhile
    // (QEMU's user takes NSS lookups, up to a millisecond with nss-systemd).
    std::unique_ptr<host::LibvirtPending> answer;
    if (libvirt_worth_asking(h, opt, v.libvirt)) answer = h.start_libvirt(opt.request.connect_uri, opt.libvirt_timeout_ms);
    v.qemu.arch = trim(h.read_file("/proc/sys/kernel/arch").value_or(""));
    if (v.qemu.arch.empty()) v.qemu.arch = "x86_64";
    v.qemu.candidates = qemu_candidates(v.qemu.arch);
    for (const auto& c : v.qemu.candidates) {
        const auto st = h.stat(c);
        if (st.exists && st.type == "file") {
            v.qemu.path = c;
            break;
        }
    }
    probe_qemu_user(h, v.qemu_user);
    if (answer) take_libvirt_answer(answer->wait(), v.qemu.arch, v.libvirt);
    // libvirt probed this very binary and tells its version; otherwise read
    // the banner from the binary, and only when that fails ask QEMU itself,
    // which costs 12-15 ms of dynamic loading, beside the reads below.
    std::thread version;
    auto& q = v.qemu;
    const auto& lv = v.libvirt;
    host::BinaryString banner;
    if (!q.path.empty() && lv.snapshot.hypervisor_version > 0 && (lv.domcaps_kvm.path == q.path || lv.domcaps_qemu.path == q.path)) {
        const uint64_t hv = lv.snapshot.hypervisor_version;
        q.version = std::to_string(hv / 1000000) + "." + std::to_string((hv / 1000) % 1000) + "." + std::to_string(hv % 1000);
        q.version_from = "libvirt";
    } else if (!q.path.empty() && (banner = h.binary_string(q.path, "QEMU emulator version ")).value &&
               !parse_qemu_version(banner.value->substr(0, banner.value->find('\n'))).empty()) {
        q.version_line = trim(banner.value->substr(0, banner.value->find('\n')));
        q.version = parse_qemu_version(q.version_line);
        q.version_from = "binary";
    } else if (!q.path.empty()) {
        version = std::thread([&h, &q] {
            const host::RunResult r = h.run({q.path, "--version"}, 2000);
            q.version_from = "--version";
            q.version_ran = r.started;
            q.version_exit = r.exit_code;
            q.version_timed_out = r.timed_out;
            const std::string first = r.out.substr(0, r.out.find('\n'));
            q.version_line = trim(first);
            q.version = parse_qemu_version(first);
            if (!r.started) q.version_error = r.error;
            else if (r.timed_out) q.version_error = "did not answer within 2 s";
            else if (r.exit_code != 0) q.version_error = "exited with status " + std::to_string(r.exit_code) + ": " + trim(r.err);
            else if (q.version.empty()) q.version_error = "no version in its output: " + q.version_line;
        });
    }

    MountTable own;
    const MountTable& mounts = given_or_read(opt.mounts, h, own);
    const std::string& net_name = opt.request.network;
    for (auto& n : v.libvirt.networks) {
        // An inactive network has no bridge; only an active one's can be missing.
        if (n.name != net_name || n.bridge.empty() || !n.active) continue;
        n.bridge_checked = true;
        n.bridge_exists = h.stat("/sys/class/net/" + n.bridge).exists;
    }
    std::string target;
    for (const auto& p : v.libvirt.pools)
        if (p.name == opt.request.pool) target = p.target;
    if (!target.empty()) probe_dir(h, target, "target of pool " + opt.request.pool, mounts, v.pool_dir);
    if (!target.empty()) {
        v.images_dir = v.pool_dir;
    } else {
        probe_dir(h, "/var/lib/libvirt/images", "libvirt's default images directory", mounts, v.images_dir);
    }
    if (version.joinable()) version.join();
}

}  // namespace kvmready
