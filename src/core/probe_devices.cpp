// DevicesFacts: PCI devices through the host's udev enumeration, their
// passthrough attributes from sysfs, and what the host itself depends on
// (the root filesystem's disk, the default route's interface).
#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <sstream>

#include "core/pci_config.hpp"
#include "core/mountinfo.hpp"
#include "core/probe.hpp"
#include "util/text.hpp"

namespace kvmready {

namespace {

using util::trim;

std::optional<unsigned> read_number(const host::Host& h, const std::string& path) {
    auto v = read_trimmed(h, path);
    if (!v || v->empty() || v->size() > 9 || !std::all_of(v->begin(), v->end(), ::isdigit)) return std::nullopt;
    return static_cast<unsigned>(std::stoul(*v));
}

// "0x1af4" (sysfs) or "1AF4" (udev) -> "1af4".
std::string hex_id(std::string s) {
    s = util::lower(trim(std::move(s)));
    if (s.rfind("0x", 0) == 0) s = s.substr(2);
    return s;
}

// bdf -> group number: each group's devices, read through the group's own
// directory so a recording holds the listing (a listed directory keeps only
// what was read in it).
std::map<std::string, int> read_iommu_groups(const host::Host& h) {
    std::map<std::string, int> out;
    for (const auto& g : h.list_dir("/sys/kernel/iommu_groups")) {
        if (g.empty() || g.size() > 6 || !std::all_of(g.begin(), g.end(), ::isdigit)) continue;
        const std::string dir = "/sys/kernel/iommu_groups/" + g + "/devices";
        for (const auto& bdf : h.list_dir(dir)) {
            if (!host::is_pci_address(bdf)) continue;
            (void)h.read_file(dir + "/" + bdf + "/vendor");
            out[bdf] = std::stoi(g);
        }
    }
    return out;
}

void read_pci(const host::Host& h, const host::UdevDevice& u, const std::map<std::string, int>& groups, PciDevice& d) {
    const std::string base = "/sys/bus/pci/devices/" + u.sysname;
    d.bdf = u.sysname;
    d.parent = u.pci_parent;
    d.driver = u.driver;
    auto prop = [&](const char* k) {
        auto it = u.properties.find(k);
        return it == u.properties.end() ? std::string() : it->second;
    };
    if (const std::string id = prop("PCI_ID"); id.size() == 9 && id[4] == ':') {
        d.vendor = hex_id(id.substr(0, 4));
        d.device = hex_id(id.substr(5));
    } else {
        d.vendor = hex_id(h.read_file(base + "/vendor").value_or(""));
        d.device = hex_id(h.read_file(base + "/device").value_or(""));
    }
    std::string cls = hex_id(prop("PCI_CLASS"));
    if (cls.empty()) cls = hex_id(h.read_file(base + "/class").value_or(""));
    if (!cls.empty() && cls.size() < 6) cls = std::string(6 - cls.size(), '0') + cls;
    d.class_code = cls;
    d.driver_override = read_trimmed(h, base + "/driver_override").value_or("");
    if (d.driver_override == "(null)") d.driver_override.clear();
    if (auto it = groups.find(d.bdf); it != groups.end()) d.iommu_group = it->second;
    // Only PCI-to-PCI bridges (root and switch ports; is_pcie and acs stay
    // unset on the others): the verdicts read ACS on the ports above a
    // device, nothing else from the config space. As root each read is 4 KiB
    // of config cycles (1-3 ms a device, and it wakes runtime-suspended ones).
    if (d.class_code.rfind("0604", 0) == 0) {
        if (auto cfg = h.read_file(base + "/config")) {
            const PciConfig c = parse_pci_config(*cfg);
            d.is_pcie = c.is_pcie;
            d.acs = c.acs;
        }
    }
    d.reset_method = read_trimmed(h, base + "/reset_method");
    d.reset_file = h.stat(base + "/reset").exists;
    d.sriov_totalvfs = read_number(h, base + "/sriov_totalvfs");
    if (d.sriov_totalvfs) d.sriov_numvfs = read_number(h, base + "/sriov_numvfs");
    d.boot_vga = read_trimmed(h, base + "/boot_vga").value_or("") == "1";
}

// The device number of the filesystem mounted at "/" (the last mount of / wins).
std::string root_devnum(const MountTable& table) {
    std::string devnum;
    for (const auto& m : table.mounts)
        if (m.entry.mountpoint == "/") devnum = m.devnum;
    return devnum;
}

// The block devices under `name` (dm, md, ...): its slaves, recursively; each
// slave is read (its dev file) so a recording keeps the listing.
void with_slaves(const host::Host& h, const std::string& name, int depth, std::set<std::string>& out) {
    if (!out.insert(name).second || depth > 4) return;
    const std::string dir = "/sys/class/block/" + name + "/slaves";
    for (const auto& s : h.list_dir(dir)) {
        (void)h.read_file(dir + "/" + s + "/dev");
        with_slaves(h, s, depth + 1, out);
    }
}

bool all_zero(const std::string& s) { return !s.empty() && s.find_first_not_of('0') == std::string::npos; }

// Interfaces with a default route (IPv4 and IPv6), then their bridge ports
// and bond slaves.
std::vector<std::string> default_route_interfaces(const host::Host& h) {
    std::set<std::string> ifs;
    std::istringstream v4(h.read_file("/proc/net/route").value_or(""));
    for (std::string line; std::getline(v4, line);) {
        auto w = util::words(line);  // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if (w.size() >= 8 && all_zero(w[1]) && all_zero(w[7])) ifs.insert(w[0]);
    }
    std::istringstream v6(h.read_file("/proc/net/ipv6_route").value_or(""));
    for (std::string line; std::getline(v6, line);) {
        auto w = util::words(line);  // dest prefix src srcprefix nexthop metric refcnt use flags iface
        if (w.size() >= 10 && all_zero(w[0]) && all_zero(w[1]) && w[9] != "lo") ifs.insert(w[9]);
    }
    std::set<std::string> lower;
    for (const auto& i : ifs) {
        const std::string brif = "/sys/class/net/" + i + "/brif";
        for (const auto& p : h.list_dir(brif)) {
            (void)h.read_file(brif + "/" + p + "/port_no");
            lower.insert(p);
        }
        for (const auto& s : util::words(h.read_file("/sys/class/net/" + i + "/bonding/slaves").value_or(""))) lower.insert(s);
    }
    ifs.insert(lower.begin(), lower.end());
    return {ifs.begin(), ifs.end()};
}

std::string module_state(const host::Host& h, const std::string& name, const std::string& builtin, const std::string& dep) {
    const std::string dir = "/sys/module/" + name;
    if (h.stat(dir).exists) return h.read_file(dir + "/initstate") ? "loaded" : "builtin";
    std::string file = name;
    std::replace(file.begin(), file.end(), '_', '-');
    // modules.builtin and modules.dep name files: kernel/drivers/vfio/pci/vfio-pci.ko(.xz)
    auto listed = [&](const std::string& text) {
        for (const auto& n : {name, file})
            for (const auto& ext : {".ko:", ".ko\n", ".ko.xz:", ".ko.zst:", ".ko.gz:"})
                if (text.find("/" + n + ext) != std::string::npos) return true;
        return false;
    };
    if (listed(builtin + "\n")) return "builtin";
    if (listed(dep)) return "loadable";
    return "absent";
}

void probe_vfio_modules(const host::Host& h, const Facts& f, DevicesFacts& d) {
    const std::vector<std::string> names = {"vfio", "vfio_pci", "vfio_iommu_type1"};
    std::string builtin, dep;
    if (!std::all_of(names.begin(), names.end(), [&](const std::string& n) { return h.stat("/sys/module/" + n).exists; }) &&
        !f.kernel.release.empty()) {
        builtin = h.read_file("/lib/modules/" + f.kernel.release + "/modules.builtin").value_or("");
        dep = h.read_file("/lib/modules/" + f.kernel.release + "/modules.dep").value_or("");
    }
    for (const auto& n : names) d.vfio_modules[n] = module_state(h, n, builtin, dep);
    d.allow_unsafe_interrupts = read_trimmed(h, "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
}

// Remapped interrupt chips are named IR-PCI-MSI, IR-IO-APIC (Intel and AMD).
std::optional<bool> interrupt_remapping(const host::Host& h) {
    auto text = h.read_file("/proc/interrupts");
    if (!text) return std::nullopt;
    if (text->find(" IR-") != std::string::npos) return true;
    if (text->find("PCI-MSI") != std::string::npos || text->find("IO-APIC") != std::string::npos) return false;
    return std::nullopt;
}

void mark_host_devices(const host::Host& h, const MountTable& mounts, const host::UdevSnapshot& snap, DevicesFacts& d) {
    std::map<std::string, PciDevice*> by_bdf;
    for (auto& p : d.pci) by_bdf[p.bdf] = &p;
    const std::string root = root_devnum(mounts);
    std::set<std::string> root_chain;
    for (const auto& u : snap.devices)
        if (u.subsystem == "block" && !root.empty() && u.devnum == root) d.root_device = u.sysname;
    if (!d.root_device.empty()) with_slaves(h, d.root_device, 0, root_chain);
    const auto routes = default_route_interfaces(h);
    d.default_route_interfaces = routes;
    for (const auto& u : snap.devices) {
        auto it = by_bdf.find(u.pci_parent);
        if (it == by_bdf.end()) continue;
        PciDevice& p = *it->second;
        if (u.subsystem == "block") {
            p.block_devices.push_back(u.sysname);
            p.root_fs |= root_chain.count(u.sysname) > 0;
        } else if (u.subsystem == "net") {
            p.net_devices.push_back(u.sysname);
            p.default_route |= std::find(routes.begin(), routes.end(), u.sysname) != routes.end();
        }
    }
}

}  // namespace

void probe_devices(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    auto& d = f.devices;
    d.probed = true;
    const host::UdevSnapshot snap = h.udev_devices();
    d.enumeration = snap.source;
    d.error = snap.available ? snap.error : (snap.error.empty() ? "devices could not be enumerated" : snap.error);
    const auto groups = read_iommu_groups(h);
    for (const auto& u : snap.devices) {
        if (u.subsystem != "pci") continue;
        PciDevice p;
        read_pci(h, u, groups, p);
        d.pci.push_back(std::move(p));
    }
    std::sort(d.pci.begin(), d.pci.end(), [](const PciDevice& a, const PciDevice& b) { return a.bdf < b.bdf; });
    MountTable own;
    mark_host_devices(h, given_or_read(opt.mounts, h, own), snap, d);
    probe_vfio_modules(h, f, d);
    d.interrupt_remapping = interrupt_remapping(h);
}

}  // namespace kvmready
