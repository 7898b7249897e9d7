#include "checks/devices_verdict.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/pci_config.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

bool is_bridge(const PciDevice& d) { return d.class_code.rfind("0604", 0) == 0 || d.class_code.rfind("0600", 0) == 0; }

bool vfio_viable(const PciDevice& d) {
    // vfio's own allow-list (vfio_dev_driver_allowed) plus unbound devices.
    return d.driver.empty() || d.driver == "vfio-pci" || d.driver == "pci-stub" || d.driver == "pcieport" || is_bridge(d);
}

std::string vendor_device(const PciDevice& d) { return d.vendor + ":" + d.device; }

std::vector<std::string> host_uses(const PciDevice& d) {
    std::vector<std::string> out;
    if (d.root_fs) out.push_back(fmt::format("holds the root filesystem ({})", util::join(d.block_devices, ", ")));
    if (d.default_route) out.push_back(fmt::format("carries the default route ({})", util::join(d.net_devices, ", ")));
    if (d.boot_vga) out.push_back("is the boot display");
    return out;
}

const PciDevice* find_device(const DevicesFacts& d, const std::string& bdf) {
    for (const auto& p : d.pci)
        if (p.bdf == bdf) return &p;
    return nullptr;
}

std::vector<const PciDevice*> match_devices(const DevicesFacts& d, const std::string& selector) {
    const std::string s = util::lower(selector);
    std::vector<const PciDevice*> out;
    for (const auto& p : d.pci) {
        const bool by_id = vendor_device(p) == s;
        const bool by_bdf = p.bdf == s || (s.size() == 7 && p.bdf.size() == 12 && p.bdf.substr(5) == s);
        if (by_id || by_bdf) out.push_back(&p);
    }
    return out;
}

namespace {

std::string name_of(const PciDevice& d) {
    return fmt::format("{} ({}{})", d.bdf, vendor_device(d), d.driver.empty() ? "" : ", " + d.driver);
}

// Ports above d without the ACS isolation the kernel wants, for the
// "why do they share a group" note.
std::vector<std::string> ports_without_acs(const DevicesFacts& f, const PciDevice& d) {
    std::vector<std::string> out;
    const PciDevice* p = find_device(f, d.parent);
    for (int depth = 0; p && depth < 32; ++depth, p = find_device(f, p->parent)) {
        if (!p->is_pcie || !p->acs.config_read) continue;
        if (!p->acs.present || (p->acs.control & kAcsRequired) != kAcsRequired) out.push_back(p->bdf);
    }
    return out;
}

std::string bind_commands(const PciDevice& d) {
    const std::string dev = "/sys/bus/pci/devices/" + d.bdf;
    return fmt::format("echo vfio-pci > {}/driver_override; {}echo {} > /sys/bus/pci/drivers_probe", dev,
                       d.driver.empty() ? "" : fmt::format("echo {} > {}/driver/unbind; ", d.bdf, dev), d.bdf);
}

void add_notes(const DevicesFacts& f, const PciDevice& d, DeviceVerdict& v) {
    if (d.reset_method && d.reset_method->empty())
        v.notes.push_back("cannot be reset (no reset method): the guest may find it in a bad state after a reboot");
    else if (!d.reset_method && !d.reset_file)
        v.notes.push_back("the kernel offers no reset for it: the guest may find it in a bad state after a reboot");
    if (d.sriov_totalvfs && *d.sriov_totalvfs > 0)
        v.notes.push_back(fmt::format("offers {} SR-IOV virtual functions ({} enabled): assign those instead to share it "
                                      "(echo N > /sys/bus/pci/devices/{}/sriov_numvfs)",
                                      *d.sriov_totalvfs, d.sriov_numvfs.value_or(0), d.bdf));
    if (!v.group_endpoints.empty()) {
        const auto ports = ports_without_acs(f, d);
        if (!ports.empty())
            v.notes.push_back(fmt::format("no ACS isolation on {}: the devices below share one group", util::join(ports, ", ")));
    }
}

}  // namespace

DeviceVerdict judge_device(const DevicesFacts& f, const PciDevice& d) {
    DeviceVerdict v;
    v.device = &d;
    v.host_uses = host_uses(d);
    if (is_bridge(d)) {
        v.why.push_back("a PCI bridge or port: it stays with the host and goes along with the devices below it");
        return v;
    }
    if (!d.iommu_group) {
        v.why.push_back("in no IOMMU group (no IOMMU)");
        return v;
    }
    for (const auto& u : v.host_uses) v.why.push_back(u + ": assigning it cuts the host off");
    std::vector<const PciDevice*> unbound;  // of the group, what must be bound to vfio-pci
    if (d.driver != "vfio-pci") unbound.push_back(&d);
    for (const auto& o : f.pci) {
        if (o.bdf == d.bdf || o.iommu_group != d.iommu_group) continue;
        if (!is_bridge(o)) v.group_endpoints.push_back(&o);
        if (!vfio_viable(o)) unbound.push_back(&o);
        for (const auto& u : host_uses(o))
            v.why.push_back(fmt::format("shares IOMMU group {} with {}, which {}: the group can only be assigned whole", *d.iommu_group,
                                        o.bdf, u));
    }
    const auto module = [&](const char* m) {
        auto it = f.vfio_modules.find(m);
        return it == f.vfio_modules.end() ? std::string("absent") : it->second;
    };
    if (module("vfio_pci") == "absent" || module("vfio_iommu_type1") == "absent")
        v.why.push_back("this kernel has no vfio-pci/vfio_iommu_type1 module");
    if (f.interrupt_remapping == false && !(f.allow_unsafe_interrupts && util::has_word("Y y 1", *f.allow_unsafe_interrupts)))
        v.why.push_back("interrupt remapping is off, so vfio_iommu_type1 refuses the device (enable it in the firmware, or "
                        "allow_unsafe_interrupts=1 at your own risk)");
    v.assignable = v.why.empty();
    v.ready = v.assignable && unbound.empty();
    if (!v.group_endpoints.empty()) {
        std::vector<std::string> names;
        for (const auto* o : v.group_endpoints) names.push_back(o->bdf);
        v.notes.push_back(fmt::format("shares IOMMU group {} with {}: assign both or neither", *d.iommu_group, util::join(names, ", ")));
    }
    if (v.assignable)
        for (const auto* u : unbound) v.todo.push_back(fmt::format("bind {} to vfio-pci: {}", name_of(*u), bind_commands(*u)));
    // vfio-pci.ids= binds every device with the ID at boot: right only when
    // none of them must stay with the host.
    if (v.assignable && !unbound.empty()) {
        const std::string id = vendor_device(d);
        const bool alone = std::none_of(f.pci.begin(), f.pci.end(), [&](const PciDevice& o) {
            return vendor_device(o) == id && o.iommu_group != d.iommu_group;
        });
        v.todo.push_back(alone ? fmt::format("persistently: vfio-pci.ids={} on the kernel command line (no other {} device stays with the host)", id, id)
                               : fmt::format("persistently: a driver_override per device (not vfio-pci.ids={}: another device with that ID "
                                             "stays with the host)", id));
    }
    add_notes(f, d, v);
    return v;
}

}  // namespace kvmready::checks
