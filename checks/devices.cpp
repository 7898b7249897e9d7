// devices.passthrough: which PCI devices can be given to a guest with VFIO,
// and for each one that cannot, exactly why and what to do. One check with
// a per-device list in its evidence, so every output format (and the fleet
// matrix) stays one row per check. Optional, like iommu.enabled.
#include <algorithm>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/devices_verdict.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

Json device_json(const DeviceVerdict& v) {
    const PciDevice& d = *v.device;
    Json j = {{"bdf", d.bdf}, {"id", vendor_device(d)}, {"class", d.class_code}, {"driver", d.driver}};
    j["iommu_group"] = d.iommu_group ? Json(*d.iommu_group) : Json();
    Json members = Json::array();
    for (const auto* o : v.group_endpoints) members.push_back(o->bdf);
    j["group_shared_with"] = members;
    j["assignable"] = v.assignable;
    j["bound_to_vfio"] = v.ready;
    if (!v.why.empty()) j["why_not"] = v.why;
    if (!v.todo.empty()) j["todo"] = v.todo;
    if (!v.notes.empty()) j["notes"] = v.notes;
    j["reset_method"] = d.reset_method ? Json(*d.reset_method) : Json();
    if (d.sriov_totalvfs) j["sriov"] = {{"total_vfs", *d.sriov_totalvfs}, {"enabled_vfs", d.sriov_numvfs.value_or(0)}};
    if (!v.host_uses.empty()) j["host_uses"] = v.host_uses;
    return j;
}

void no_such_device(const std::string& sel, Finding& out) {
    set(out, Status::Fail, fmt::format("no PCI device matches --device {} (give a BDF such as 0000:01:00.0 or VENDOR:DEVICE)", sel));
    remedy(out, "List the PCI devices with their addresses and IDs.", {"lspci -nn"}, ids::fix::none, "manual", false);
}

// iommu.enabled's finding: its "no IOMMU" diagnosis (kernel arguments and
// drivers per vendor) is the one both checks give. The runner has judged it
// first (devices.passthrough depends on it); asked of its function otherwise.
Finding iommu_finding(const Facts& f, const Results& r) {
    if (const Finding* done = r.find(ids::iommu_enabled.text)) return *done;
    Finding io;
    if (const CheckSpec* spec = find_check(ids::iommu_enabled.text)) spec->run(f, r, io);
    return io;
}

// No IOMMU at all: the ACPI tables were read and describe none (no DMAR,
// IVRS, VIOT or IORT table) and the kernel registered no IOMMU unit. Then
// device assignment is not a question for this host, and iommu.enabled
// already says why and what to do.
bool no_iommu_at_all(const IommuFacts& io) {
    const auto has = [&](const char* t) { return std::find(io.acpi_tables.begin(), io.acpi_tables.end(), t) != io.acpi_tables.end(); };
    return io.acpi_tables_read && !io.dmar && !io.ivrs && !has("VIOT") && !has("IORT") && io.units.empty();
}

void no_iommu(const Facts& f, const Results& r, const std::vector<DeviceVerdict>& vs, Finding& out) {
    const std::string sel = f.request.device;
    if (!sel.empty() && vs.empty()) return no_such_device(sel, out);
    if (sel.empty() && no_iommu_at_all(f.system.iommu)) {
        set(out, Status::Skip,
            fmt::format("not applicable: this host has no IOMMU, so none of its {} PCI device{} can be assigned to a guest "
                        "(iommu.enabled says why and what to do)",
                        vs.size(), vs.size() == 1 ? "" : "s"));
        return;
    }
    const Finding io = iommu_finding(f, r);
    std::string subject = "no PCI device can";
    if (!sel.empty()) {
        std::vector<std::string> names;
        for (const auto& v : vs) names.push_back(fmt::format("{} ({})", v.device->bdf, vendor_device(*v.device)));
        subject = util::join(names, ", ") + " cannot";
    }
    set(out, Status::Warn, subject + " be assigned to a guest: no IOMMU groups (" + io.message + ")");
    out.remediation = io.remediation;
    if (out.remediation.text.empty())
        remedy(out, "Enable the IOMMU (VT-d or AMD-Vi) in the firmware and the kernel.", {}, ids::fix::none, "manual", true);
}

void asked_device(const Facts& f, const std::vector<DeviceVerdict>& vs, Finding& out) {
    const std::string& sel = f.request.device;
    if (vs.empty()) return no_such_device(sel, out);
    std::vector<std::string> parts, todo;
    bool all = true, ready = true;
    for (const auto& v : vs) {
        all &= v.assignable;
        ready &= v.ready;
        const PciDevice& d = *v.device;
        std::string s = fmt::format("{} ({}{})", d.bdf, vendor_device(d), d.driver.empty() ? ", no driver" : ", " + d.driver);
        if (!v.assignable) s += " is not assignable: " + util::join(v.why, "; ");
        else if (v.ready) s += " is bound to vfio-pci and ready to assign";
        else s += " is assignable once bound to vfio-pci";
        if (!v.notes.empty()) s += " (" + util::join(v.notes, "; ") + ")";
        parts.push_back(s);
        todo.insert(todo.end(), v.todo.begin(), v.todo.end());
    }
    set(out, all ? Status::Pass : Status::Warn, util::join(parts, "; "));
    if (all && !ready)
        remedy(out, util::join(todo, "; ") + ".", {fmt::format("kvmready fix devices.vfio-bind --device {} --apply --yes", sel)},
               ids::fix::devices_vfio_bind, "confirm", true);
}

void passthrough_check(const Facts& f, const Results& r, Finding& out) {
    const DevicesFacts& df = f.devices;
    auto& ev = out.evidence;
    if (!df.probed) {
        set(out, Status::Unknown, "the PCI devices were not probed");
        return;
    }
    // No PCI bus in sight (a container, or a tree recorded before kvmready
    // enumerated devices): nothing to assign, nothing to judge.
    if (df.pci.empty()) {
        set(out, Status::Skip, "no PCI devices to judge" + (df.error.empty() ? std::string() : " (" + df.error + ")"));
        return;
    }
    ev["enumeration"] = df.enumeration;
    ev["iommu_groups"] = f.system.iommu.groups;
    ev["interrupt_remapping"] = df.interrupt_remapping ? Json(*df.interrupt_remapping) : Json();
    ev["vfio_modules"] = df.vfio_modules;
    std::vector<DeviceVerdict> verdicts;
    const std::vector<const PciDevice*> asked = f.request.device.empty() ? std::vector<const PciDevice*>{} : match_devices(df, f.request.device);
    if (!f.request.device.empty()) {
        for (const auto* d : asked) verdicts.push_back(judge_device(df, *d));
    } else {
        for (const auto& d : df.pci)
            if (!is_bridge(d)) verdicts.push_back(judge_device(df, d));
    }
    Json list = Json::array();
    for (const auto& v : verdicts) list.push_back(device_json(v));
    ev["devices"] = list;
    if (f.system.iommu.groups == 0 && df.pci.end() == std::find_if(df.pci.begin(), df.pci.end(), [](const PciDevice& d) { return d.iommu_group.has_value(); }))
        return no_iommu(f, r, verdicts, out);
    if (!f.request.device.empty()) return asked_device(f, verdicts, out);
    size_t assignable = 0, ready = 0;
    for (const auto& v : verdicts) {
        assignable += v.assignable;
        ready += v.ready;
    }
    if (assignable == 0 && !verdicts.empty() && !verdicts.front().why.empty() &&
        std::all_of(verdicts.begin(), verdicts.end(), [&](const DeviceVerdict& v) { return v.why.back() == verdicts.front().why.back(); })) {
        set(out, Status::Warn, "no PCI device can be assigned to a guest: " + verdicts.front().why.back());
        return;
    }
    set(out, Status::Pass,
        fmt::format("{} PCI device{} in {} IOMMU groups: {} assignable ({} bound to vfio-pci), {} not (the host depends on them or on "
                    "a device in their group); `kvmready check devices --device BDF` says why and what to do",
                    verdicts.size(), verdicts.size() == 1 ? "" : "s", f.system.iommu.groups, assignable, ready, verdicts.size() - assignable));
}

}  // namespace

void register_devices(std::vector<CheckSpec>& r) {
    r.push_back({ids::devices_passthrough, "PCI devices that can be assigned to guests", Level::Optional, {ids::iommu_enabled.text},
                 "PCI devices through libudev, or sysfs where no udev database exists (/sys/bus/pci/devices: class, IDs, driver, driver_override, config space for ACS, "
                 "reset_method, sriov_totalvfs/numvfs, boot_vga), /sys/kernel/iommu_groups, /proc/interrupts (remapped IR- "
                 "chips), /sys/module and modules.builtin/modules.dep (vfio, vfio_pci, vfio_iommu_type1), the block devices "
                 "under / (/proc/self/mountinfo, slaves) and the default route's interfaces (/proc/net/route, ipv6_route).",
                 "VFIO gives a guest a whole IOMMU group: a device that shares its group with one the host needs, that holds "
                 "the root filesystem or the default route, or that cannot be reset, breaks the host or the guest when "
                 "assigned. virt-host-validate stops at \"IOMMU enabled\"; the question is per device.",
                 "Bind the device (and every device of its group) to vfio-pci with a per-device driver_override (kvmready fix "
                 "devices.vfio-bind --device BDF); vfio-pci.ids= only when no device with the same ID stays with the host.",
                 passthrough_check});
}

}  // namespace kvmready::checks
