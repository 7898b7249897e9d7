// iommu.enabled: whether devices can be assigned to guests (VFIO). Optional:
// ordinary guests with virtio devices do not need an IOMMU.
#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "checks/kernel_cmdline.hpp"
#include "util/text.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

CpuClass vendor_class(const Facts& f) {
    if (!f.cpu.available) return CpuClass::Unknown;
    return cpu_class(cpuid::decode(f.cpu.dump).vendor);
}

bool in_vm(const Facts& f) { return this_host_cpu(f) && cpuid::decode(f.cpu.dump).hypervisor; }

std::string unit_kind(const std::vector<IommuUnit>& units) {
    bool intel = false, amd = false;
    for (const auto& u : units) {
        intel |= u.name.rfind("dmar", 0) == 0;
        amd |= u.name.rfind("ivhd", 0) == 0;
    }
    if (intel) return "Intel VT-d";
    if (amd) return "AMD-Vi";
    return "IOMMU";
}

// How the running kernel was built for an IOMMU option: "y"/"m" built in
// or as a module, "n" not built, "" unknown (no /boot/config-RELEASE).
std::string built(const IommuFacts& io, const char* option) {
    auto it = io.kernel_config_options.find(option);
    return it == io.kernel_config_options.end() ? "" : it->second;
}

// The firmware describes an IOMMU, and the kernel's own build configuration
// says it has no driver for it: no kernel argument helps, another kernel
// does. Debian's cloud flavour leaves CONFIG_AMD_IOMMU out on purpose.
void kernel_without_driver(const Facts& f, bool amd, Finding& out) {
    const auto& io = f.system.iommu;
    const char* option = amd ? "CONFIG_AMD_IOMMU" : "CONFIG_INTEL_IOMMU";
    set(out, Status::Warn,
        fmt::format("the firmware describes {} (ACPI {} table) but the running kernel has no driver for it: {} is built without "
                    "{} ({}), so there are no IOMMU groups",
                    amd ? "AMD-Vi" : "Intel VT-d", amd ? "IVRS" : "DMAR", f.kernel.release, option, io.kernel_config));
    const bool cloud = f.kernel.release.find("-cloud") != std::string::npos;
    std::string text = fmt::format("Boot a kernel built with {}: {}, then reboot into it.", option,
                                   cloud ? "Debian's generic linux-image-amd64 rather than this -cloud flavour, which leaves it out"
                                         : "Debian's linux-image-amd64 has it");
    std::vector<std::string> commands = {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})};
    if (amd) {
        text += " AMD-Vi is on by default there (no amd_iommu= argument needed); iommu=pt optionally keeps host-owned devices "
                "untranslated while assigned ones stay isolated.";
    } else if (!util::has_word(arg_value(kernel_args(f.kernel.cmdline), "intel_iommu").value_or(""), "on", ',')) {
        CmdlinePlan p = add_kernel_arg(f.system.boot, "intel_iommu=on");
        text += " It also needs intel_iommu=on: " + p.text + " iommu=pt as well keeps host-owned devices untranslated.";
        commands.insert(commands.end(), p.commands.begin(), p.commands.end());
    }
    remedy(out, text, commands, "", "manual", true);
}

// DMAR or IVRS without groups: the kernel lacks the driver, has not enabled
// VT-d, or the IOMMU failed to initialise. False when neither table exists.
bool firmware_iommu_without_groups(const Facts& f, const std::vector<KernelArg>& args, CpuClass cls, Finding& out) {
    const auto& io = f.system.iommu;
    if (io.dmar && cls != CpuClass::Amd) {
        if (built(io, "CONFIG_INTEL_IOMMU") == "n") {
            kernel_without_driver(f, false, out);
            return true;
        }
        auto v = arg_value(args, "intel_iommu");
        if (v && util::has_word(*v, "on", ',')) {
            set(out, Status::Warn,
                built(io, "CONFIG_INTEL_IOMMU").empty()
                    ? "intel_iommu=on is set and the firmware has a DMAR table, yet the kernel created no IOMMU groups: it lacks "
                      "CONFIG_INTEL_IOMMU or VT-d failed to initialise"
                    : "intel_iommu=on is set, the firmware has a DMAR table and the kernel has CONFIG_INTEL_IOMMU, yet it created no "
                      "IOMMU groups: VT-d failed to initialise");
            remedy(out, "The kernel log says why VT-d did not come up.", {"dmesg | grep -i -e DMAR -e IOMMU"}, "", "manual", true);
            return true;
        }
        set(out, Status::Warn,
            "the firmware describes Intel VT-d (ACPI DMAR table) but the kernel has not enabled it: add intel_iommu=on to "
            "assign devices to guests");
        CmdlinePlan p = add_kernel_arg(f.system.boot, "intel_iommu=on");
        p.text += " iommu=pt as well keeps host-owned devices untranslated (faster) while assigned devices stay isolated.";
        remedy(out, p.text, p.commands, "", "manual", true);
        return true;
    }
    if (!io.ivrs) return false;
    const std::string amd = built(io, "CONFIG_AMD_IOMMU");
    if (amd == "n") {
        kernel_without_driver(f, true, out);
        return true;
    }
    if (!amd.empty()) {
        set(out, Status::Warn,
            "the firmware describes AMD-Vi (ACPI IVRS table) and the kernel has CONFIG_AMD_IOMMU, yet it created no IOMMU groups: "
            "AMD-Vi failed to initialise");
        remedy(out, "The kernel log says why AMD-Vi did not come up.", {"dmesg | grep -i -e AMD-Vi -e IOMMU"}, "", "manual", true);
        return true;
    }
    set(out, Status::Warn,
        "the firmware describes AMD-Vi (ACPI IVRS table) but the kernel created no IOMMU groups: AMD's IOMMU is on by "
        "default, so this kernel lacks CONFIG_AMD_IOMMU or AMD-Vi failed to initialise");
    remedy(out, "Boot a kernel built with CONFIG_AMD_IOMMU (Debian's linux-image-amd64 has it); the kernel log says why AMD-Vi did not come up.",
           {"dmesg | grep -i -e AMD-Vi -e IOMMU", package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "",
           "manual", true);
    return true;
}

void iommu(const Facts& f, const Results&, Finding& out) {
    const auto& io = f.system.iommu;
    auto& ev = out.evidence;
    const auto args = kernel_args(f.kernel.cmdline);
    if (!io.acpi_tables_read && !io.groups_dir) {
        set(out, Status::Unknown,
            "cannot tell whether an IOMMU is on: neither /sys/firmware/acpi/tables nor /sys/kernel/iommu_groups could be read");
        remedy(out, "Run kvmready on the host itself (sysfs mounted), or list the groups by hand.", {"ls /sys/kernel/iommu_groups"},
               "", "manual", false);
        return;
    }
    ev["acpi_dmar"] = io.dmar;
    ev["acpi_ivrs"] = io.ivrs;
    std::vector<std::string> unit_names;
    for (const auto& u : io.units) unit_names.push_back(u.name);
    ev["iommu_units"] = unit_names;
    ev["iommu_groups"] = io.groups;
    if (!io.domain_types.empty()) ev["default_domain_types"] = io.domain_types;
    Json cmd = Json::object();
    for (const char* k : {"intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict"})
        if (auto v = arg_value(args, k)) cmd[k] = *v;
    ev["cmdline"] = cmd;
    ev["vfio"] = io.vfio;
    if (!io.kernel_config.empty()) {
        Json kc = {{"file", io.kernel_config}};
        for (const auto& [k, v] : io.kernel_config_options) kc[k] = v;
        ev["kernel_config"] = kc;
    }

    CpuClass cls = vendor_class(f);
    if (cls == CpuClass::Unknown) cls = io.dmar ? CpuClass::Intel : io.ivrs ? CpuClass::Amd : CpuClass::Unknown;

    if (io.groups > 0) {
        std::string mode;
        if (io.domain_types.count("identity") && io.domain_types.size() == 1)
            mode = "; host devices bypass translation (passthrough, iommu=pt), assigned ones are isolated";
        set(out, Status::Pass,
            fmt::format("{} is on: {} IOMMU group{}{}, so PCI devices can be assigned to guests with VFIO{}", unit_kind(io.units),
                        io.groups, io.groups == 1 ? "" : "s",
                        unit_names.empty() ? "" : " (" + fmt::format("{}", fmt::join(unit_names, ", ")) + ")", mode));
        return;
    }
    if (!io.acpi_tables_read) {
        set(out, Status::Unknown, "no IOMMU groups, and the ACPI tables could not be read to tell whether the firmware offers VT-d/AMD-Vi");
        remedy(out, "Look for a DMAR (Intel) or IVRS (AMD) table as root.", {"ls /sys/firmware/acpi/tables"}, "", "manual", true);
        return;
    }

    // Disabled on purpose on the command line: the argument to remove.
    for (const char* k : {"intel_iommu", "amd_iommu", "iommu"}) {
        auto v = arg_value(args, k);
        if (!v || !util::has_word(*v, "off", ',')) continue;
        const std::string arg = fmt::format("{}={}", k, *v);
        set(out, Status::Warn, fmt::format("the IOMMU is switched off on the kernel command line ({}), so no device can be assigned to a guest", arg));
        CmdlinePlan p = remove_kernel_arg(f.system.boot, arg);
        remedy(out, p.text, p.commands, "", "manual", true);
        return;
    }
    if (firmware_iommu_without_groups(f, args, cls, out)) return;
    const bool vm = in_vm(f);
    const char* table = cls == CpuClass::Amd ? "IVRS" : cls == CpuClass::Intel ? "DMAR" : "DMAR/IVRS";
    if (vm) {
        set(out, Status::Warn,
            fmt::format("this virtual machine has no virtual IOMMU (no ACPI {} table), so devices cannot be assigned to guests nested in it", table));
        // The virtual IOMMU must be one this VM's CPU vendor's kernel drives
        // as such: VT-d for Intel guests, AMD-Vi (or the paravirtual
        // virtio-iommu, which either drives) for AMD ones.
        if (cls == CpuClass::Amd)
            remedy(out,
                   "Only needed to pass devices through to nested guests: give this VM a virtual IOMMU on the outer host (QEMU "
                   "-machine q35 -device amd-iommu,intremap=on, or -device virtio-iommu-pci; libvirt <iommu model='virtio'/>, or "
                   "model='amd' where the outer libvirt offers it).",
                   {"virsh edit <vm>   # on the outer host: <iommu model='virtio'/> in <devices>"}, "", "manual", false);
        else
            remedy(out,
                   "Only needed to pass devices through to nested guests: give this VM a virtual IOMMU on the outer host (QEMU "
                   "-machine q35,kernel-irqchip=split -device intel-iommu,intremap=on; libvirt <iommu model='intel'/>).",
                   {"virsh edit <vm>   # on the outer host: <iommu model='intel'><driver intremap='on'/></iommu> in <devices>"}, "",
                   "manual", false);
        return;
    }
    const char* feature = cls == CpuClass::Amd ? "AMD IOMMU (AMD-Vi)" : cls == CpuClass::Intel ? "VT-d" : "VT-d or AMD IOMMU";
    set(out, Status::Warn,
        fmt::format("no IOMMU: the firmware provides no ACPI {} table, so {} is disabled in the firmware setup or absent", table, feature));
    CmdlinePlan p = cls == CpuClass::Intel ? add_kernel_arg(f.system.boot, "intel_iommu=on") : CmdlinePlan{};
    remedy(out,
           fmt::format("Only needed for device assignment: enable {} in the firmware (BIOS/UEFI) setup{}", feature,
                       cls == CpuClass::Intel ? ", then add intel_iommu=on to the kernel command line and reboot." : ", then reboot."),
           p.commands, "", "manual", true);
}

}  // namespace

void register_iommu(std::vector<CheckSpec>& r) {
    r.push_back({ids::iommu_enabled, "IOMMU for device assignment", Level::Optional, {},
                 "ACPI tables in /sys/firmware/acpi/tables (DMAR: Intel VT-d, IVRS: AMD-Vi), /sys/class/iommu/*, "
                 "/sys/kernel/iommu_groups/* and each group's type, /dev/vfio/vfio, /proc/cmdline (intel_iommu=, amd_iommu=, "
                 "iommu=, iommu.passthrough=), /etc/default/grub, CPUID for the vendor, and, when DMAR/IVRS exist but no group does, "
                 "/boot/config-RELEASE (CONFIG_INTEL_IOMMU, CONFIG_AMD_IOMMU: whether the kernel has the driver at all).",
                 "Assigning a PCI device (GPU, NIC, NVMe, SR-IOV VF) to a guest with VFIO needs an IOMMU to confine the device's "
                 "DMA to that guest's memory. Ordinary guests with virtio devices do not need one, so a host without it is still "
                 "ready: this check is optional.",
                 "Enable VT-d/AMD-Vi in the firmware setup; boot a kernel built with the vendor's driver (CONFIG_INTEL_IOMMU, "
                 "CONFIG_AMD_IOMMU: not Debian's -cloud flavour); on Intel add intel_iommu=on to the kernel command line (AMD's "
                 "is on by default); iommu=pt optionally keeps host-owned devices untranslated.",
                 iommu});
}

}  // namespace kvmready::checks
