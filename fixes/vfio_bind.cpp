// devices.vfio-bind: give PCI devices to vfio-pci for passthrough (--device),
// now through sysfs (op pci.driver: driver_override, unbind, probe) and at
// every boot through a driverctl-style udev rule (the override per device)
// plus a modprobe.d softdep (vfio-pci loads before the device's own driver).
// Refuses what the host depends on and partial IOMMU groups; --undo gives
// each device back to its driver.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "checks/devices_verdict.hpp"
#include "fixes/fixes.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

constexpr const char* kRules = "/etc/udev/rules.d/61-kvmready-vfio.rules";
constexpr const char* kModprobe = "/etc/modprobe.d/kvmready-vfio.conf";

std::vector<const PciDevice*> selected_devices(const PlanInput& in) {
    std::vector<const PciDevice*> out;
    std::set<std::string> seen;
    std::string list = in.options.device;
    std::replace(list.begin(), list.end(), ',', ' ');
    for (const std::string& one : util::words(list)) {
        const auto m = checks::match_devices(in.facts.devices, one);
        if (m.empty()) throw std::runtime_error(fmt::format("--device {}: no such PCI device on this host", one));
        for (const auto* d : m)
            if (seen.insert(d->bdf).second) out.push_back(d);
    }
    return out;
}

// Lines appended to a config file the plan saw as `before`; nullopt when
// every line is there already.
std::optional<std::string> with_lines(const std::optional<std::string>& before, const std::vector<std::string>& lines, const char* header) {
    std::string text = before.value_or(header);
    bool added = false;
    for (const auto& l : lines) {
        if (text.find(l + "\n") != std::string::npos) continue;
        if (!text.empty() && text.back() != '\n') text += "\n";
        text += l + "\n";
        added = true;
    }
    if (!added) return std::nullopt;
    return text;
}

void check_whole_groups(const DevicesFacts& df, const std::vector<const PciDevice*>& devs) {
    std::set<std::string> chosen;
    for (const auto* d : devs) chosen.insert(d->bdf);
    for (const auto* d : devs) {
        if (!d->iommu_group) throw std::runtime_error(fmt::format("{} is in no IOMMU group: no IOMMU, so VFIO cannot take it", d->bdf));
        const checks::DeviceVerdict v = checks::judge_device(df, *d);
        if (!v.assignable) throw std::runtime_error(fmt::format("refusing {}: {}", d->bdf, util::join(v.why, "; ")));
        for (const auto* o : v.group_endpoints)
            if (!chosen.count(o->bdf) && o->driver != "vfio-pci")
                throw std::runtime_error(fmt::format("refusing {}: it shares IOMMU group {} with {} ({}): assign both or neither "
                                                     "(--device {},{})",
                                                     d->bdf, *d->iommu_group, o->bdf, o->driver.empty() ? "no driver" : o->driver,
                                                     d->bdf, o->bdf));
    }
}

std::vector<std::string> echo_argv(const std::string& value, const std::string& path) {
    return {"sh", "-c", fmt::format("echo {} > {}", value, path)};
}

std::optional<Plan> plan_vfio_bind(const PlanInput& in) {
    if (in.options.device.empty()) return std::nullopt;
    const DevicesFacts& df = in.facts.devices;
    const auto devs = selected_devices(in);
    check_whole_groups(df, devs);
    Plan p;
    p.applicability = Applicability::Confirm;
    p.reason = fmt::format("--device {} asks for vfio-pci", in.options.device);
    for (const auto& f : in.report.findings)
        if (f.id == ids::devices_passthrough.text) p.repairs.push_back(f.id);
    auto it = df.vfio_modules.find("vfio_pci");
    if (!in.offline() && it != df.vfio_modules.end() && it->second == "loadable")
        p.steps.push_back(command({"modprobe", "vfio-pci"}, "load vfio-pci now"));
    std::vector<std::string> rules, softdeps;
    for (const auto* d : devs) {
        rules.push_back(fmt::format("ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{}\", ATTR{{driver_override}}=\"vfio-pci\"", d->bdf));
        if (!d->driver.empty() && d->driver != "vfio-pci") softdeps.push_back(fmt::format("softdep {} pre: vfio-pci", d->driver));
        if (in.offline() || d->driver == "vfio-pci") continue;
        Step s;
        s.op = "pci.driver";
        s.summary = fmt::format("bind {} ({}) to vfio-pci now{}", d->bdf, checks::vendor_device(*d),
                                d->driver.empty() ? "" : fmt::format(" (from {}; undo binds it back)", d->driver));
        const std::string dev = "/sys/bus/pci/devices/" + d->bdf;
        s.commands = {echo_argv("vfio-pci", dev + "/driver_override")};
        if (!d->driver.empty()) s.commands.push_back(echo_argv(d->bdf, dev + "/driver/unbind"));
        s.commands.push_back(echo_argv(d->bdf, "/sys/bus/pci/drivers_probe"));
        s.args = {{"bdf", d->bdf}, {"driver", "vfio-pci"}};
        s.runtime = true;
        p.steps.push_back(std::move(s));
    }
    const auto rules_before = in.target_file(kRules);
    if (auto text = with_lines(rules_before, rules, "# Written by `kvmready fix` (devices.vfio-bind): these devices go to vfio-pci at boot.\n")) {
        Step s = write_file(kRules, rules_before, *text);
        s.summary = fmt::format("bind {} to vfio-pci at every boot ({})", in.options.device, kRules);
        p.steps.push_back(std::move(s));
    }
    const auto mod_before = in.target_file(kModprobe);
    if (auto text = with_lines(mod_before, softdeps, "# Written by `kvmready fix` (devices.vfio-bind): vfio-pci before the drivers it takes devices from.\n")) {
        Step s = write_file(kModprobe, mod_before, *text);
        s.summary = fmt::format("load vfio-pci before {} at boot ({})", util::join(softdeps, ", "), kModprobe);
        p.steps.push_back(std::move(s));
    }
    const bool pending = std::any_of(p.steps.begin(), p.steps.end(), [](const Step& s) { return s.op != "command"; });
    if (!pending) return std::nullopt;
    p.notes.push_back("the initramfs may load the original driver before udev runs: update-initramfs -u makes the boot binding hold there too");
    return p;
}

}  // namespace

FixSpec fix_devices_vfio_bind() {
    return {ids::fix::devices_vfio_bind.text, "Bind PCI devices to vfio-pci for passthrough (--device)", {ids::devices_passthrough},
            "driver_override + unbind/probe through sysfs now; a udev rule (driver_override per device) and a modprobe.d "
            "softdep for boot. Refuses devices the host depends on (boot display, root filesystem, default route) and "
            "partial IOMMU groups; --undo binds each device back to its driver.",
            plan_vfio_bind};
}

}  // namespace kvmready::fix
