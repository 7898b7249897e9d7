// iommu.*, memory.*, kernel.cgroups, confidential.*, security.*: the host
// around KVM. None of these decide whether KVM works; they decide whether the
// host is ready for what people put on it (device assignment, huge pages,
// resource limits, encrypted guests, confinement), so most are optional.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"

namespace kvmready::checks {

namespace {

using Json = nlohmann::ordered_json;

// ---- small helpers ---------------------------------------------------------

struct KernelArg {
    std::string key, value;
    bool has_value = false;
};

// The kernel's own words; init's arguments after "--" are not kernel parameters.
std::vector<KernelArg> kernel_args(const std::string& cmdline) {
    std::vector<KernelArg> out;
    std::string cur;
    bool quoted = false;
    auto flush = [&] {
        if (cur.empty()) return;
        KernelArg a;
        auto eq = cur.find('=');
        a.key = cur.substr(0, eq);
        if (eq != std::string::npos) {
            a.value = cur.substr(eq + 1);
            a.has_value = true;
        }
        std::replace(a.key.begin(), a.key.end(), '-', '_');
        out.push_back(std::move(a));
        cur.clear();
    };
    for (char c : cmdline) {
        if (c == '"') quoted = !quoted;
        else if (std::isspace(static_cast<unsigned char>(c)) && !quoted) {
            if (cur == "--") return out;
            flush();
        } else cur.push_back(c);
    }
    if (cur != "--") flush();
    return out;
}

std::optional<std::string> arg_value(const std::vector<KernelArg>& args, const std::string& key) {
    std::optional<std::string> v;
    for (const auto& a : args)
        if (a.key == key) v = a.value;  // the last one wins
    return v;
}

bool has_word(const std::string& list, const std::string& word, char sep = ' ') {
    size_t pos = 0;
    while (pos <= list.size()) {
        size_t end = list.find(sep, pos);
        if (end == std::string::npos) end = list.size();
        if (list.compare(pos, end - pos, word) == 0) return true;
        pos = end + 1;
    }
    return false;
}

bool has_flag(const std::vector<std::string>& flags, const char* name) {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) out.push_back(cur), cur.clear();
        } else cur.push_back(c);
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

// "512 MiB", "1.5 GiB", "64 KiB": what an admin reads at a glance.
std::string human_kb(uint64_t kb) {
    if (kb >= 1024ull * 1024) {
        double g = static_cast<double>(kb) / (1024.0 * 1024.0);
        return std::fabs(g - std::round(g)) < 0.05 ? fmt::format("{:.0f} GiB", std::round(g)) : fmt::format("{:.1f} GiB", g);
    }
    if (kb >= 1024) return fmt::format("{} MiB", (kb + 512) / 1024);
    return fmt::format("{} KiB", kb);
}

// Page sizes as the kernel and mount options spell them: "2M", "1G".
std::string size_arg(uint64_t kb) {
    if (kb % (1024 * 1024) == 0) return fmt::format("{}G", kb / (1024 * 1024));
    if (kb % 1024 == 0) return fmt::format("{}M", kb / 1024);
    return fmt::format("{}K", kb);
}

// "2M", "1G", "2048K", "2097152" -> kB.
std::optional<uint64_t> parse_size_kb(std::string s) {
    if (s.empty()) return std::nullopt;
    uint64_t mult_bytes = 1;
    char suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
    if (suffix == 'K' || suffix == 'M' || suffix == 'G') {
        mult_bytes = suffix == 'K' ? 1024ull : suffix == 'M' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
        s.pop_back();
    }
    if (s.empty() || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
    return std::stoull(s) * mult_bytes / 1024;
}

// "always [madvise] never" -> "madvise".
std::string bracketed(const std::string& s) {
    auto a = s.find('['), b = s.find(']');
    if (a == std::string::npos || b == std::string::npos || b < a) return "";
    return s.substr(a + 1, b - a - 1);
}

bool param_on(const std::string& v) { return v == "Y" || v == "y" || v == "1"; }

bool this_host_cpu(const Facts& f) { return f.cpu.available && (f.cpu.source == "live" || f.cpu.source == "recorded"); }

CpuClass vendor_class(const Facts& f) {
    if (!f.cpu.available) return CpuClass::Unknown;
    return cpu_class(cpuid::decode(f.cpu.dump).vendor);
}

bool in_vm(const Facts& f) { return this_host_cpu(f) && cpuid::decode(f.cpu.dump).hypervisor; }

// ---- kernel command line changes, for the boot loader this host uses -------

struct Plan {
    std::string text;
    std::vector<std::string> commands;
};

bool grub_has(const BootFacts& b, const std::string& arg) {
    for (const auto* v : {&b.grub_cmdline_linux, &b.grub_cmdline_default})
        if (*v && has_word(**v, arg)) return true;
    return false;
}

std::string regenerate_grub(const BootFacts& b) {
    return b.update_grub || !b.grubby ? "update-grub" : "grub2-mkconfig -o /boot/grub2/grub.cfg";
}

Plan add_kernel_arg(const BootFacts& b, const std::string& arg) {
    if (b.grubby)
        return {fmt::format("Add {} to every installed kernel's boot entry with grubby, then reboot.", arg),
                {fmt::format("grubby --update-kernel=ALL --args=\"{}\"", arg)}};
    if (b.grub_default_read && grub_has(b, arg))
        return {fmt::format("{} is already in /etc/default/grub but not in the running kernel's command line: regenerate "
                            "grub.cfg and reboot.",
                            arg),
                {regenerate_grub(b)}};
    if (b.kernel_cmdline_file && !b.grub_default_read)
        return {fmt::format("Append {} to /etc/kernel/cmdline (systemd-boot), regenerate the boot entries, then reboot.", arg),
                {fmt::format("sed -i '1s/$/ {}/' /etc/kernel/cmdline", arg), "kernel-install add \"$(uname -r)\" \"/boot/vmlinuz-$(uname -r)\""}};
    std::string edit = !b.grub_default_read || b.grub_cmdline_linux
                           ? fmt::format("sed -i 's/^GRUB_CMDLINE_LINUX=\"/&{} /' /etc/default/grub", arg)
                           : fmt::format("echo 'GRUB_CMDLINE_LINUX=\"{}\"' >> /etc/default/grub", arg);
    return {fmt::format("Add {} to GRUB_CMDLINE_LINUX in /etc/default/grub, regenerate grub.cfg, then reboot.", arg),
            {edit, regenerate_grub(b)}};
}

Plan remove_kernel_arg(const BootFacts& b, const std::string& arg) {
    if (b.grubby)
        return {fmt::format("Remove {} from every installed kernel's boot entry with grubby, then reboot.", arg),
                {fmt::format("grubby --update-kernel=ALL --remove-args=\"{}\"", arg)}};
    return {fmt::format("Remove {} from the kernel command line (GRUB_CMDLINE_LINUX* in /etc/default/grub or a file in "
                        "/etc/default/grub.d/), regenerate grub.cfg, then reboot.",
                        arg),
            {fmt::format("sed -i 's/ *{}//' /etc/default/grub", arg), regenerate_grub(b)}};
}

// ---- iommu.enabled -----------------------------------------------------------

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
        if (!v || !has_word(*v, "off", ',')) continue;
        const std::string arg = fmt::format("{}={}", k, *v);
        set(out, Status::Warn, fmt::format("the IOMMU is switched off on the kernel command line ({}), so no device can be assigned to a guest", arg));
        Plan p = remove_kernel_arg(f.system.boot, arg);
        remedy(out, p.text, p.commands, "", "manual", true);
        return;
    }
    if (io.dmar && cls != CpuClass::Amd) {
        auto v = arg_value(args, "intel_iommu");
        if (v && has_word(*v, "on", ',')) {
            set(out, Status::Warn,
                "intel_iommu=on is set and the firmware has a DMAR table, yet the kernel created no IOMMU groups: it lacks "
                "CONFIG_INTEL_IOMMU or VT-d failed to initialise");
            remedy(out, "The kernel log says why VT-d did not come up.", {"dmesg | grep -i -e DMAR -e IOMMU"}, "", "manual", true);
            return;
        }
        set(out, Status::Warn,
            "the firmware describes Intel VT-d (ACPI DMAR table) but the kernel has not enabled it: add intel_iommu=on to "
            "assign devices to guests");
        Plan p = add_kernel_arg(f.system.boot, "intel_iommu=on");
        p.text += " iommu=pt as well keeps host-owned devices untranslated (faster) while assigned devices stay isolated.";
        remedy(out, p.text, p.commands, "", "manual", true);
        return;
    }
    if (io.ivrs) {
        set(out, Status::Warn,
            "the firmware describes AMD-Vi (ACPI IVRS table) but the kernel created no IOMMU groups: AMD's IOMMU is on by "
            "default, so this kernel lacks CONFIG_AMD_IOMMU or AMD-Vi failed to initialise");
        remedy(out, "Boot a kernel built with CONFIG_AMD_IOMMU (Debian's linux-image-amd64 has it); the kernel log says why AMD-Vi did not come up.",
               {"dmesg | grep -i -e AMD-Vi -e IOMMU", package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
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
    Plan p = cls == CpuClass::Intel ? add_kernel_arg(f.system.boot, "intel_iommu=on") : Plan{};
    remedy(out,
           fmt::format("Only needed for device assignment: enable {} in the firmware (BIOS/UEFI) setup{}", feature,
                       cls == CpuClass::Intel ? ", then add intel_iommu=on to the kernel command line and reboot." : ", then reboot."),
           p.commands, "", "manual", true);
}

// ---- memory.* ---------------------------------------------------------------

// hugepages= counts the kernel was asked for at boot, per page size (kB).
std::map<uint64_t, uint64_t> requested_hugepages(const Facts& f) {
    std::map<uint64_t, uint64_t> req;
    const auto args = kernel_args(f.kernel.cmdline);
    std::optional<uint64_t> dflt = f.system.memory.hugepagesize_kb;
    if (auto d = arg_value(args, "default_hugepagesz")) dflt = parse_size_kb(*d);
    std::optional<uint64_t> cur;
    for (const auto& a : args) {
        if (a.key == "hugepagesz") cur = parse_size_kb(a.value);
        if (a.key != "hugepages") continue;
        uint64_t n = 0;
        // hugepages=N, or per NUMA node: hugepages=0:N,1:M
        if (a.value.find(':') != std::string::npos) {
            size_t pos = 0;
            while ((pos = a.value.find(':', pos)) != std::string::npos) {
                ++pos;
                n += std::strtoull(a.value.c_str() + pos, nullptr, 10);
            }
        } else {
            n = std::strtoull(a.value.c_str(), nullptr, 10);
        }
        if (auto size = cur ? cur : dflt) req[*size] = n;
    }
    return req;
}

// Page sizes (kB) some hugetlbfs mount serves, with its mount point.
std::map<uint64_t, std::string> hugetlbfs_sizes(const Facts& f) {
    std::map<uint64_t, std::string> out;
    for (const auto& m : f.system.mounts) {
        if (m.fstype != "hugetlbfs") continue;
        std::optional<uint64_t> size = f.system.memory.hugepagesize_kb;
        for (const auto& opt : words([&] {
                 std::string s = m.super_options;
                 std::replace(s.begin(), s.end(), ',', ' ');
                 return s;
             }()))
            if (opt.rfind("pagesize=", 0) == 0) size = parse_size_kb(opt.substr(9));
        if (size) out.emplace(*size, m.mountpoint);
    }
    return out;
}

void hugepages(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.hugepages_dir && !m.hugepagesize_kb) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "cannot tell: neither /proc/meminfo nor /sys/kernel/mm/hugepages could be read");
            remedy(out, "Run kvmready on the host itself.", {"grep -i huge /proc/meminfo"}, "", "manual", false);
            return;
        }
        set(out, Status::Warn, "this kernel has no huge page support (no Hugepagesize in /proc/meminfo, no /sys/kernel/mm/hugepages)");
        remedy(out, "Guests backed by huge pages (<memoryBacking><hugepages/>) need a kernel with CONFIG_HUGETLBFS, such as Debian's linux-image-amd64.",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    if (m.hugepagesize_kb) ev["default_size"] = human_kb(*m.hugepagesize_kb);
    Json pools = Json::array();
    std::vector<std::string> sizes, reserved;
    for (const auto& p : m.pools) {
        Json j = {{"size", human_kb(p.size_kb)}, {"path", fmt::format("/sys/kernel/mm/hugepages/hugepages-{}kB", p.size_kb)}};
        j["nr"] = p.nr ? Json(*p.nr) : Json();
        j["free"] = p.free ? Json(*p.free) : Json();
        j["reserved"] = p.resv ? Json(*p.resv) : Json();
        j["surplus"] = p.surplus ? Json(*p.surplus) : Json();
        pools.push_back(j);
        sizes.push_back(human_kb(p.size_kb));
        if (p.nr.value_or(0) > 0)
            reserved.push_back(fmt::format("{} × {} ({} free)", *p.nr, human_kb(p.size_kb), p.free.value_or(0)));
    }
    ev["pools"] = pools;
    const auto mounts = hugetlbfs_sizes(f);
    Json mj = Json::object();
    for (const auto& [size, mp] : mounts) mj[mp] = human_kb(size);
    ev["hugetlbfs_mounts"] = mj;

    std::vector<std::string> problems;
    std::vector<std::string> commands;
    std::string text;
    const auto req = requested_hugepages(f);
    if (!req.empty()) {
        Json rj = Json::object();
        for (const auto& [size, n] : req) rj[human_kb(size)] = n;
        ev["cmdline_requested"] = rj;
    }
    for (const auto& [size, n] : req) {
        auto it = std::find_if(m.pools.begin(), m.pools.end(), [&](const auto& p) { return p.size_kb == size; });
        if (it == m.pools.end()) {
            problems.push_back(fmt::format("the kernel command line asks for {} pages of {}, a size this CPU or kernel does not offer", n, human_kb(size)));
            continue;
        }
        if (it->nr && *it->nr < n) {
            problems.push_back(fmt::format("the kernel command line asks for {} × {} pages but only {} could be reserved at boot "
                                           "(not enough free memory)",
                                           n, human_kb(size), *it->nr));
            commands.push_back(fmt::format("sysctl -w vm.compact_memory=1 && echo {} > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages", n, size));
            text = "At boot the kernel found too little contiguous free memory for the pages asked for: ask for fewer (or add RAM), "
                   "or try to reserve the rest now after compacting memory; guests configured for more huge pages than exist fail "
                   "to start.";
        }
    }
    for (const auto& p : m.pools) {
        if (p.nr.value_or(0) == 0 || mounts.count(p.size_kb)) continue;
        problems.push_back(fmt::format("{} × {} pages are reserved but no hugetlbfs of that size is mounted, so QEMU/libvirt "
                                       "cannot use them",
                                       *p.nr, human_kb(p.size_kb)));
        const bool dflt = m.hugepagesize_kb && *m.hugepagesize_kb == p.size_kb;
        const std::string mp = dflt ? "/dev/hugepages" : "/dev/hugepages" + size_arg(p.size_kb);
        commands.push_back(dflt ? fmt::format("mkdir -p {0} && mount -t hugetlbfs hugetlbfs {0}", mp)
                                : fmt::format("mkdir -p {0} && mount -t hugetlbfs -o pagesize={1} hugetlbfs {0}", mp, size_arg(p.size_kb)));
        if (!text.empty()) text += " ";
        text += "Mount hugetlbfs for each page size in use (systemd mounts /dev/hugepages at boot; add an fstab line for other "
                "sizes); libvirt finds the mounts itself.";
    }
    if (!problems.empty()) {
        std::string msg = problems.front();
        for (size_t i = 1; i < problems.size(); ++i) msg += "; " + problems[i];
        set(out, Status::Warn, msg);
        remedy(out, text.empty() ? "Reserve only page sizes this CPU offers (see /sys/kernel/mm/hugepages)." : text, commands,
               "memory.hugepages", "confirm", true);
        return;
    }
    if (reserved.empty()) {
        set(out, Status::Pass,
            fmt::format("no huge pages reserved (sizes offered: {}); guests use normal pages and transparent hugepages, which "
                        "suits most hosts",
                        sizes.empty() ? std::string("none listed") : fmt::format("{}", fmt::join(sizes, ", "))));
        return;
    }
    std::vector<std::string> mps;
    for (const auto& [size, mp] : mounts) mps.push_back(mp);
    set(out, Status::Pass,
        fmt::format("huge pages reserved for guests: {}; hugetlbfs mounted at {}", fmt::join(reserved, ", "), fmt::join(mps, ", ")));
}

void thp(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.thp_enabled) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "/sys/kernel/mm/transparent_hugepage/enabled could not be read");
            remedy(out, "Run kvmready on the host itself.", {"cat /sys/kernel/mm/transparent_hugepage/enabled"}, "", "manual", false);
            return;
        }
        set(out, Status::Warn, "this kernel has no transparent hugepages (no /sys/kernel/mm/transparent_hugepage): guest RAM is mapped with 4 KiB pages");
        remedy(out, "Use a kernel with CONFIG_TRANSPARENT_HUGEPAGE (Debian's linux-image-amd64), or reserve hugetlbfs pages for guests.",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    const std::string mode = bracketed(*m.thp_enabled);
    const std::string defrag = m.thp_defrag ? bracketed(*m.thp_defrag) : "";
    ev["enabled"] = *m.thp_enabled;
    ev["mode"] = mode;
    if (m.thp_defrag) ev["defrag"] = *m.thp_defrag;
    if (mode == "always" || mode == "madvise") {
        set(out, Status::Pass,
            fmt::format("transparent hugepages: {} (QEMU madvise()s guest RAM, so it gets huge pages){}", mode,
                        defrag.empty() ? "" : fmt::format(", defrag: {}", defrag)));
        return;
    }
    if (mode == "never") {
        set(out, Status::Warn,
            "transparent hugepages are off (never): guest RAM is mapped with 4 KiB pages, which costs TLB misses in every guest "
            "unless it is backed by hugetlbfs pages");
        // hugepage_init() leaves THP off on machines under 512 MiB unless asked.
        const bool asked = arg_value(kernel_args(f.kernel.cmdline), "transparent_hugepage").has_value();
        if (m.mem_total_kb && *m.mem_total_kb < 512 * 1024 && !asked) {
            ev["reason"] = "the kernel disables THP by default on machines with less than 512 MiB of RAM";
            out.message += "; the kernel chose this itself because the machine has less than 512 MiB of RAM";
        }
        Plan p = add_kernel_arg(f.system.boot, "transparent_hugepage=madvise");
        std::vector<std::string> cmds = {"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"};
        cmds.insert(cmds.end(), p.commands.begin(), p.commands.end());
        remedy(out,
               "madvise gives huge pages only to programs that ask, as QEMU does for guest RAM: set it now, and on the kernel "
               "command line (transparent_hugepage=madvise) to keep it after a reboot.",
               cmds, "", "manual", true);
        return;
    }
    set(out, Status::Unknown, fmt::format("cannot read the transparent hugepage mode from \"{}\"", *m.thp_enabled));
    remedy(out, "Read it by hand.", {"cat /sys/kernel/mm/transparent_hugepage/enabled"}, "", "manual", false);
}

void ksm(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.ksm_run) {
        if (!m.meminfo_read) {
            set(out, Status::Unknown, "/sys/kernel/mm/ksm/run could not be read");
            remedy(out, "Run kvmready on the host itself.", {"cat /sys/kernel/mm/ksm/run"}, "", "manual", false);
            return;
        }
        set(out, Status::Skip, "this kernel has no KSM (no /sys/kernel/mm/ksm): guests' identical pages are never merged");
        return;
    }
    ev["run"] = *m.ksm_run;
    if (m.ksm_pages_shared) ev["pages_shared"] = *m.ksm_pages_shared;
    if (m.ksm_pages_sharing) ev["pages_sharing"] = *m.ksm_pages_sharing;
    if (m.ksm_full_scans) ev["full_scans"] = *m.ksm_full_scans;
    if (*m.ksm_run == "1") {
        const uint64_t saved_kb = m.ksm_pages_sharing.value_or(0) * 4;
        ev["saved"] = human_kb(saved_kb);
        if (m.ksm_pages_sharing.value_or(0) == 0) {
            set(out, Status::Pass,
                fmt::format("KSM is running (run=1) but has merged nothing yet ({} full scans): no running guest has identical "
                            "pages to share",
                            m.ksm_full_scans.value_or(0)));
            return;
        }
        set(out, Status::Pass,
            fmt::format("KSM is merging identical guest pages (run=1): {} pages shared, saving about {}", m.ksm_pages_sharing.value_or(0),
                        human_kb(saved_kb)));
        return;
    }
    if (*m.ksm_run == "0") {
        set(out, Status::Pass,
            "KSM is off (run=0): identical guest pages are not merged, which costs memory on dense hosts but no CPU and no "
            "cross-guest page-sharing side channel");
        return;
    }
    if (*m.ksm_run == "2") {
        set(out, Status::Pass, "KSM is stopped and unmerging the pages it shared (run=2)");
        return;
    }
    set(out, Status::Unknown, fmt::format("unexpected value \"{}\" in /sys/kernel/mm/ksm/run", *m.ksm_run));
    remedy(out, "Read it by hand.", {"cat /sys/kernel/mm/ksm/run"}, "", "manual", false);
}

constexpr uint64_t kLowMemoryKb = 1024 * 1024;  // 1 GiB: one small guest plus QEMU's own overhead

void available(const Facts& f, const Results&, Finding& out) {
    const auto& m = f.system.memory;
    auto& ev = out.evidence;
    if (!m.meminfo_read || !m.mem_total_kb) {
        set(out, Status::Unknown, "/proc/meminfo could not be read, so free memory is unknown");
        remedy(out, "Run kvmready on the host itself.", {"free -h"}, "", "manual", false);
        return;
    }
    // MemAvailable (Linux 3.14+) is the kernel's own estimate; MemFree alone
    // undercounts reclaimable cache, so say which one was used.
    const bool estimated = !m.mem_available_kb;
    const uint64_t avail = m.mem_available_kb.value_or(m.mem_free_kb.value_or(0));
    uint64_t huge_free = 0, huge_total = 0;
    for (const auto& p : m.pools) {
        huge_free += p.free.value_or(0) * p.size_kb;
        huge_total += p.nr.value_or(0) * p.size_kb;
    }
    ev["mem_total"] = human_kb(*m.mem_total_kb);
    ev["mem_available"] = human_kb(avail);
    ev["basis"] = estimated ? "MemFree (no MemAvailable in /proc/meminfo)" : "MemAvailable";
    ev["mem_available_kb"] = avail;
    if (huge_total) {
        ev["hugepages_total"] = human_kb(huge_total);
        ev["hugepages_free"] = human_kb(huge_free);
    }
    ev["threshold"] = human_kb(kLowMemoryKb);
    const std::string huge_note =
        huge_free ? fmt::format("; another {} sits in free huge pages that only hugepage-backed guests can use", human_kb(huge_free)) : "";
    if (avail < kLowMemoryKb) {
        set(out, Status::Warn,
            fmt::format("only {} of {} RAM is available for guests{}, less than {}{}", human_kb(avail), human_kb(*m.mem_total_kb),
                        estimated ? " (MemFree)" : "", human_kb(kLowMemoryKb), huge_note));
        std::vector<std::string> cmds = {"ps -eo pid,rss,comm --sort=-rss | head"};
        std::string text = "A guest needs its whole RAM size plus QEMU's overhead (~100-200 MiB): stop what holds memory or add RAM.";
        if (huge_free) {
            text += " Free huge pages can be returned to the system by shrinking their pool.";
            for (const auto& p : m.pools)
                if (p.free.value_or(0) > 0)
                    cmds.push_back(fmt::format("echo {} > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages",
                                               p.nr.value_or(0) - p.free.value_or(0), p.size_kb));
        }
        remedy(out, text, cmds, "", "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("{} of {} RAM is available for guests{}{}", human_kb(avail), human_kb(*m.mem_total_kb), estimated ? " (MemFree)" : "",
                    huge_note));
}

// ---- kernel.cgroups -----------------------------------------------------------

std::vector<std::string> v1_controllers_of(const MountEntry& m) {
    std::vector<std::string> out;
    std::string s = m.super_options;
    std::replace(s.begin(), s.end(), ',', ' ');
    for (const auto& o : words(s)) {
        if (o == "rw" || o == "ro" || o == "noprefix" || o == "xattr" || o == "clone_children" || o == "cpuset_v2_mode" ||
            o.find('=') != std::string::npos)
            continue;
        out.push_back(o);
    }
    return out;
}

void cgroups(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system;
    const auto& c = s.cgroups;
    auto& ev = out.evidence;
    if (!s.mountinfo_read && !c.proc_cgroups_read) {
        set(out, Status::Unknown, "neither /proc/self/mountinfo nor /proc/cgroups could be read");
        remedy(out, "Run kvmready on the host itself.", {"cat /proc/cgroups", "findmnt -t cgroup,cgroup2"}, "", "manual", false);
        return;
    }
    // v1 hierarchies by controller, the unified hierarchy's controllers.
    std::map<std::string, std::string> v1;  // controller -> mount point
    std::vector<std::string> v2_mounts;
    for (const auto& m : s.mounts) {
        if (m.fstype == "cgroup")
            for (const auto& ctl : v1_controllers_of(m)) v1.emplace(ctl, m.mountpoint);
        if (m.fstype == "cgroup2") v2_mounts.push_back(m.mountpoint);
    }
    const std::vector<std::string> v2 = c.v2_controllers ? words(*c.v2_controllers) : std::vector<std::string>{};
    const bool v2_mounted = !v2_mounts.empty();
    std::string mode;
    if (!v1.empty() && v2_mounted) mode = "hybrid";
    else if (!v1.empty()) mode = "v1";
    else if (v2_mounted) mode = "v2";
    else mode = "none";
    ev["mode"] = mode;
    if (v2_mounted) {
        ev["v2_mount"] = c.v2_mountpoint;
        ev["v2_controllers"] = c.v2_controllers ? Json(*c.v2_controllers) : Json();
        ev["v2_subtree_control"] = c.v2_subtree_control ? Json(*c.v2_subtree_control) : Json();
    }
    if (!v1.empty()) {
        Json j = Json::object();
        for (const auto& [ctl, mp] : v1) j[ctl] = mp;
        ev["v1_mounts"] = j;
    }
    const auto args = kernel_args(f.kernel.cmdline);
    Json cmd = Json::object();
    for (const char* k : {"cgroup_disable", "cgroup_no_v1", "systemd.unified_cgroup_hierarchy", "systemd.legacy_systemd_cgroup_controller", "cgroup_enable"})
        if (auto v = arg_value(args, k)) cmd[k] = *v;
    if (!cmd.empty()) ev["cmdline"] = cmd;

    if (mode == "none") {
        set(out, Status::Warn,
            "no cgroup filesystem is mounted: libvirt cannot put guests in cgroups, so it cannot apply CPU, memory or I/O "
            "limits or restrict their device access");
        remedy(out, "Mount the unified cgroup hierarchy (systemd does this at boot).",
               {"mount -t cgroup2 cgroup2 /sys/fs/cgroup"}, "", "manual", true);
        return;
    }
    if (mode == "v2" && !c.v2_controllers) {
        set(out, Status::Unknown,
            fmt::format("cgroup v2 is mounted at {} but its cgroup.controllers could not be read", c.v2_mountpoint));
        remedy(out, "Read the available controllers by hand.", {fmt::format("cat {}/cgroup.controllers", c.v2_mountpoint)}, "",
               "manual", false);
        return;
    }
    auto proc = [&](const std::string& name) -> const CgroupController* {
        for (const auto& cc : c.controllers)
            if (cc.name == name) return &cc;
        return nullptr;
    };
    // libvirt's default cgroup_controllers (qemu.conf): cpu, devices, memory,
    // blkio, cpuset, cpuacct. On v2, cpuacct is part of cpu, blkio is io and
    // device access goes through BPF programs, not a controller.
    struct Want {
        const char* v1;
        const char* v2;  // nullptr: nothing to look for on v2
    };
    constexpr Want kWants[] = {{"cpu", "cpu"}, {"cpuacct", nullptr}, {"cpuset", "cpuset"}, {"memory", "memory"},
                               {"devices", nullptr}, {"blkio", "io"}};
    std::vector<std::string> have, missing;
    std::vector<std::string> why;
    std::vector<std::string> commands;
    const auto disabled_by = arg_value(args, "cgroup_disable");
    for (const auto& w : kWants) {
        const bool in_v1 = v1.count(w.v1) > 0;
        const bool in_v2 = v2_mounted && (w.v2 ? std::find(v2.begin(), v2.end(), w.v2) != v2.end() : mode == "v2");
        if (in_v1 || in_v2) {
            // On v2, cpuacct's accounting is part of cpu and device control is BPF.
            if (in_v1 || w.v2) have.push_back(in_v1 ? w.v1 : w.v2);
            continue;
        }
        const std::string name = mode == "v2" && w.v2 ? w.v2 : w.v1;
        missing.push_back(name);
        const CgroupController* pc = proc(w.v1);
        if (disabled_by && has_word(*disabled_by, w.v1, ',')) {
            why.push_back(fmt::format("{} is disabled by cgroup_disable={} on the kernel command line", w.v1, *disabled_by));
        } else if (c.proc_cgroups_read && !pc) {
            why.push_back(fmt::format("{} is not built into this kernel", w.v1));
        } else if (pc && !pc->enabled) {
            why.push_back(fmt::format("{} is disabled at boot (/proc/cgroups enabled=0)", w.v1));
        } else if (mode == "v2" || (mode == "hybrid" && pc && pc->hierarchy == 0)) {
            why.push_back(fmt::format("{} is not in {}/cgroup.controllers", name, c.v2_mountpoint));
        } else {
            why.push_back(fmt::format("no cgroup v1 hierarchy is mounted with {}", w.v1));
            commands.push_back(fmt::format("mkdir -p /sys/fs/cgroup/{0} && mount -t cgroup -o {0} cgroup /sys/fs/cgroup/{0}", w.v1));
        }
    }
    ev["controllers_available"] = have;
    ev["controllers_missing"] = missing;
    if (auto pids = proc("pids")) ev["pids_enabled"] = pids->enabled;
    const std::string layout = mode == "v2"     ? fmt::format("cgroup v2 (unified, {})", c.v2_mountpoint)
                               : mode == "v1"   ? std::string("cgroup v1 (legacy)")
                                                : fmt::format("hybrid cgroups (v1 controllers, cgroup2 at {})", c.v2_mountpoint);
    if (mode != "v2")
        ev["note"] = "cgroup v1 is deprecated: systemd 256 and later refuse to boot on it unless forced; libvirt supports both";
    if (missing.empty()) {
        set(out, Status::Pass,
            fmt::format("{} with every controller libvirt uses: {}{}", layout, fmt::join(have, ", "),
                        mode == "v2" ? "; device access is filtered with BPF" : ""));
        return;
    }
    std::string msg = fmt::format("{} lacks the {} controller{} libvirt uses for guests: ", layout, fmt::join(missing, ", "),
                                  missing.size() == 1 ? "" : "s");
    msg += fmt::format("{}", fmt::join(why, "; "));
    set(out, Status::Warn, msg);
    if (disabled_by) {
        Plan p = remove_kernel_arg(f.system.boot, "cgroup_disable=" + *disabled_by);
        commands.insert(commands.end(), p.commands.begin(), p.commands.end());
        remedy(out, p.text + " Without these controllers libvirt cannot enforce guest CPU/memory/I/O tuning.", commands,
               "", "manual", true);
        return;
    }
    remedy(out,
           commands.empty() ? "Boot a kernel with these controllers (CONFIG_MEMCG, CONFIG_CPUSETS, CONFIG_BLK_CGROUP, "
                              "CONFIG_CGROUP_SCHED); on v2 also check that no v1 hierarchy holds them."
                            : "Mount the missing v1 hierarchies (systemd normally does this at boot).",
           commands.empty() ? std::vector<std::string>{"cat /proc/cgroups"} : commands, "kernel.cgroups",
           commands.empty() ? "manual" : "confirm", true);
}

// ---- confidential.* ---------------------------------------------------------------

std::string join_params(const ModuleInfo& m, std::initializer_list<const char*> names) {
    std::vector<std::string> parts;
    for (const char* n : names)
        if (auto it = m.parameters.find(n); it != m.parameters.end()) parts.push_back(fmt::format("{}={}", n, it->second));
    return fmt::format("{}", fmt::join(parts, ", "));
}

void sev(const Facts& f, const Results&, Finding& out) {
    auto& ev = out.evidence;
    if (!f.cpu.available) {
        set(out, Status::Unknown, "CPUID not available: " + f.cpu.unavailable_reason);
        remedy(out, "Re-run on the host itself.", {"kvmready check confidential"}, "", "manual", false);
        return;
    }
    const auto d = cpuid::decode(f.cpu.dump);
    ev["vendor"] = d.vendor;
    if (cpu_class(d.vendor) != CpuClass::Amd) {
        set(out, Status::Skip, fmt::format("not an AMD CPU ({}): SEV is AMD's memory encryption", d.vendor));
        return;
    }
    ev["cpuid_8000001f"] = d.mem_encryption;
    bool leaf = false;
    uint32_t max_guests = 0, min_sev_asid = 0;
    if (d.max_extended >= 0x8000001fu)
        if (auto l = f.cpu.dump.find(0x8000001fu)) {
            leaf = true;
            max_guests = l->ecx;
            min_sev_asid = l->edx;  // ASIDs below this are for SEV-ES/SNP guests only
            ev["encrypted_guests_max"] = max_guests;
            ev["sev_es_min_asid"] = min_sev_asid;
        }
    auto has = [&](const char* x) { return std::find(d.mem_encryption.begin(), d.mem_encryption.end(), x) != d.mem_encryption.end(); };
    if (!has("sev")) {
        set(out, Status::Skip,
            leaf ? "this CPU does not offer SEV (CPUID 8000001Fh has no SEV bit)"
                 : d.hypervisor ? "no SEV: this virtual machine's CPU has no CPUID leaf 8000001Fh (hypervisors hide SEV from guests)"
                                : "this CPU does not offer SEV (no CPUID leaf 8000001Fh)");
        return;
    }
    const auto args = kernel_args(f.kernel.cmdline);
    if (auto v = arg_value(args, "mem_encrypt")) ev["cmdline_mem_encrypt"] = *v;
    const auto& cf = f.system.confidential;
    ev["dev_sev"] = cf.dev_sev;
    if (f.system.cgroups.misc_capacity) ev["misc_capacity"] = *f.system.cgroups.misc_capacity;
    if (this_host_cpu(f) && f.cpu.cpuinfo_read) {
        ev["cpuinfo_sev"] = has_flag(f.cpu.cpuinfo_flags, "sev");
        if (!has_flag(f.cpu.cpuinfo_flags, "sev")) {
            set(out, Status::Warn,
                "the CPU offers SEV (CPUID 8000001Fh) but the kernel removed it from /proc/cpuinfo: the firmware has not "
                "enabled memory encryption (SYSCFG MemEncryptionModeEn)");
            remedy(out,
                   "Enable SME/SEV in the firmware setup (\"SMEE\", \"SEV-ES ASID Space Limit\", and \"SEV-SNP\" on Zen 3 and "
                   "later), then reboot.",
                   {}, "", "manual", true);
            return;
        }
    }
    const ModuleInfo* kvm_amd = find_module(f, "kvm_amd");
    if (!kvm_amd) {
        set(out, Status::Skip, "the CPU offers SEV, but kvm_amd is not loaded (see kvm.module)");
        return;
    }
    auto param = [&](const char* n) -> std::optional<std::string> {
        auto it = kvm_amd->parameters.find(n);
        if (it == kvm_amd->parameters.end()) return std::nullopt;
        return it->second;
    };
    Json params = Json::object();
    for (const char* n : {"sev", "sev_es", "sev_snp"})
        if (auto v = param(n)) params[n] = *v;
    ev["kvm_amd"] = params;
    if (!param("sev")) {
        set(out, Status::Warn, "the CPU offers SEV but this kernel's kvm_amd was built without it (no 'sev' parameter, CONFIG_KVM_AMD_SEV)");
        remedy(out, "Boot a kernel with CONFIG_KVM_AMD_SEV, such as Debian's linux-image-amd64 (the cloud kernel lacks it).",
               {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    if (!param_on(*param("sev"))) {
        std::string msg = fmt::format("the CPU offers SEV but kvm_amd has it off ({})", join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"}));
        if (auto v = arg_value(args, "kvm_amd.sev"); v && !param_on(*v)) {
            set(out, Status::Warn, msg + ", as kvm_amd.sev=" + *v + " on the kernel command line asks");
            Plan p = remove_kernel_arg(f.system.boot, "kvm_amd.sev=" + *v);
            remedy(out, p.text, p.commands, "", "manual", true);
            return;
        }
        if (!cf.dev_sev) {
            set(out, Status::Warn,
                msg + "; /dev/sev is missing too, so the PSP's SEV firmware did not initialise (ccp driver not loaded, or firmware "
                      "support off)");
            remedy(out, "Load the PSP driver and then kvm_amd with SEV (no VM may run while kvm_amd reloads); dmesg names a firmware failure.",
                   {"modprobe ccp", "modprobe -r kvm_amd && modprobe kvm_amd sev=1 sev_es=1", "dmesg | grep -i -e ccp -e sev"},
                   "", "manual", true);
            return;
        }
        set(out, Status::Warn, msg);
        remedy(out, "Enable it for kvm_amd persistently and reload the module while no VM runs.",
               {"echo 'options kvm_amd sev=1 sev_es=1' > /etc/modprobe.d/kvm-sev.conf", "modprobe -r kvm_amd && modprobe kvm_amd"},
               "", "manual", true);
        return;
    }
    if (!cf.dev_sev) {
        set(out, Status::Warn,
            fmt::format("kvm_amd has SEV on ({}) but /dev/sev is missing: QEMU and libvirt need it to launch encrypted guests",
                        join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"})));
        remedy(out, "Load the PSP driver that provides /dev/sev.", {"modprobe ccp", "ls -l /dev/sev"}, "", "manual", true);
        return;
    }
    std::string extra;
    if (has("sev_es") && param("sev_es") && !param_on(*param("sev_es")) && leaf && min_sev_asid <= 1)
        extra += "; SEV-ES is off because the firmware left no ASIDs for it (CPUID 8000001Fh EDX=1: raise the SEV-ES ASID "
                 "space limit in the firmware setup)";
    if (has("sev_snp") && (!param("sev_snp") || !param_on(*param("sev_snp"))))
        extra += param("sev_snp") ? "; SEV-SNP is offered by the CPU but off in kvm_amd (needs SNP enabled in firmware)"
                                 : "; SEV-SNP is offered by the CPU but this kernel predates KVM's SNP host support (Linux 6.11)";
    set(out, Status::Pass,
        fmt::format("SEV is available for guests: kvm_amd {}, /dev/sev present{}{}", join_params(*kvm_amd, {"sev", "sev_es", "sev_snp"}),
                    leaf ? fmt::format(", up to {} encrypted guests", max_guests) : "", extra));
}

bool td_guest(const Facts& f) {
    if (has_flag(f.cpu.cpuinfo_flags, "tdx_guest") && this_host_cpu(f)) return true;
    const auto d = cpuid::decode(f.cpu.dump);
    if (d.max_basic < 0x21) return false;
    auto l = f.cpu.dump.find(0x21);
    if (!l) return false;
    // "IntelTDX    " in EBX, EDX, ECX order, as leaf 0 spells the vendor.
    auto put = [](std::string& s, uint32_t r) {
        for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((r >> (8 * i)) & 0xff));
    };
    std::string sig;
    put(sig, l->ebx);
    put(sig, l->edx);
    put(sig, l->ecx);
    return sig == "IntelTDX    ";
}

void tdx(const Facts& f, const Results&, Finding& out) {
    auto& ev = out.evidence;
    if (!f.cpu.available) {
        set(out, Status::Unknown, "CPUID not available: " + f.cpu.unavailable_reason);
        remedy(out, "Re-run on the host itself.", {"kvmready check confidential"}, "", "manual", false);
        return;
    }
    const auto d = cpuid::decode(f.cpu.dump);
    ev["vendor"] = d.vendor;
    if (cpu_class(d.vendor) != CpuClass::Intel || d.vendor != "GenuineIntel") {
        set(out, Status::Skip, fmt::format("not an Intel CPU ({}): TDX is Intel's", d.vendor));
        return;
    }
    ev["read"] = "kvm_intel parameters, /proc/cpuinfo flags, CPUID leaf 21h, /sys/firmware/tdx (the kernel log, where the TDX "
                 "module reports itself, is not read)";
    if (td_guest(f)) {
        ev["td_guest"] = true;
        set(out, Status::Skip, "this system is itself a TDX trust domain (CPUID leaf 21h \"IntelTDX    \"); it cannot host trust domains");
        return;
    }
    const bool platform = this_host_cpu(f) && has_flag(f.cpu.cpuinfo_flags, "tdx_host_platform");
    ev["cpuinfo_tdx_host_platform"] = platform;
    ev["sys_firmware_tdx"] = f.system.confidential.sys_firmware_tdx;
    const ModuleInfo* kvm_intel = find_module(f, "kvm_intel");
    if (!kvm_intel) {
        set(out, Status::Skip, "kvm_intel is not loaded (see kvm.module), so KVM's TDX support cannot be judged");
        return;
    }
    auto it = kvm_intel->parameters.find("tdx");
    if (it == kvm_intel->parameters.end()) {
        set(out, Status::Skip,
            fmt::format("kvm_intel has no 'tdx' parameter: this kernel{} predates KVM's TDX host support (Linux 6.16) or lacks "
                        "CONFIG_KVM_INTEL_TDX{}",
                        f.kernel.release.empty() ? "" : " (" + f.kernel.release + ")",
                        platform ? ", although the firmware has TDX on (tdx_host_platform)" : ""));
        if (platform) {
            out.status = Status::Warn;
            remedy(out, "Boot a kernel with KVM TDX host support (6.16 or later, CONFIG_KVM_INTEL_TDX).", {}, "", "manual", true);
        }
        return;
    }
    ev["kvm_intel_tdx"] = it->second;
    if (param_on(it->second)) {
        set(out, Status::Pass, fmt::format("TDX is enabled in KVM (kvm_intel tdx={}): trust domains can be created", it->second));
        return;
    }
    if (!platform) {
        set(out, Status::Skip,
            fmt::format("TDX is off (kvm_intel tdx={}) and the kernel found no TDX in the firmware (no tdx_host_platform flag); "
                        "only some Xeon processors (4th generation and later) have it",
                        it->second));
        return;
    }
    set(out, Status::Warn, fmt::format("the firmware has TDX on (tdx_host_platform) but KVM does not use it (kvm_intel tdx={})", it->second));
    remedy(out, "Enable TDX in kvm_intel persistently and reload it while no VM runs (or add kvm_intel.tdx=1 to the kernel command line).",
           {"echo 'options kvm_intel tdx=1' > /etc/modprobe.d/kvm-tdx.conf", "modprobe -r kvm_intel && modprobe kvm_intel"},
           "", "manual", true);
}

// ---- security.* ---------------------------------------------------------------

bool security_driver_none(const SecurityFacts& s) {
    return s.qemu_security_driver && s.qemu_security_driver->find("\"none\"") != std::string::npos;
}

void driver_none(Finding& out, const std::string& lsm) {
    set(out, Status::Warn,
        fmt::format("{} is active, but /etc/libvirt/qemu.conf sets security_driver = \"none\", so libvirt does not confine "
                    "guests with it: a compromised QEMU can reach every other guest's disks",
                    lsm));
    remedy(out,
           fmt::format("Remove that line so libvirt uses {} again (it labels images and confines each guest), then restart libvirt; "
                       "if a guest then fails on a denial, fix the label or boolean the denial names instead.",
                       lsm),
           {"sed -i 's/^security_driver *= *\"none\"/#&/' /etc/libvirt/qemu.conf", "systemctl restart libvirtd"},
           "", "manual", true);
}

void selinux(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system.security;
    auto& ev = out.evidence;
    if (s.lsm) ev["lsm"] = *s.lsm;
    if (s.selinux_config_mode) ev["config_mode"] = *s.selinux_config_mode;
    if (s.selinux_config_type) ev["config_type"] = *s.selinux_config_type;
    const bool lsm_says = s.lsm && has_word(*s.lsm, "selinux", ',');
    if (!s.selinuxfs) {
        if (lsm_says) {
            set(out, Status::Unknown, "SELinux is an active LSM but /sys/fs/selinux is not mounted, so its mode cannot be read");
            remedy(out, "Mount selinuxfs.", {"mount -t selinuxfs selinuxfs /sys/fs/selinux"}, "", "confirm", true);
            return;
        }
        set(out, Status::Skip,
            fmt::format("SELinux is not active (no /sys/fs/selinux){}{}", s.lsm ? "; active LSMs: " + *s.lsm : "",
                        s.selinux_config_mode ? fmt::format("; /etc/selinux/config says SELINUX={}", *s.selinux_config_mode) : ""));
        return;
    }
    ev["enforce"] = s.selinux_enforce ? Json(*s.selinux_enforce) : Json();
    ev["policy_loaded"] = s.selinux_policy_loaded;
    Json b = Json::object();
    for (const auto& [k, v] : s.selinux_booleans) b[k] = v;
    ev["booleans"] = b;
    if (s.images_mount) ev["images_filesystem"] = fmt::format("{} ({} on {})", s.images_mount->fstype, s.images_mount->source, s.images_mount->mountpoint);
    if (s.qemu_security_driver) ev["qemu_conf_security_driver"] = *s.qemu_security_driver;
    if (!s.selinux_enforce) {
        set(out, Status::Unknown, "/sys/fs/selinux exists but its enforce file could not be read");
        remedy(out, "Read the mode with the SELinux tools.", {"getenforce"}, "", "manual", false);
        return;
    }
    if (!s.selinux_policy_loaded) {
        set(out, Status::Warn,
            "SELinux is enabled in the kernel but no policy is loaded: libvirt's sVirt labelling does nothing until one is");
        remedy(out, "Install and load a policy (Fedora/RHEL: selinux-policy-targeted; Debian: selinux-policy-default and "
                    "selinux-activate), then reboot so every file is labelled.",
               {"sestatus"}, "", "manual", true);
        return;
    }
    if (security_driver_none(s)) {
        driver_none(out, "SELinux");
        return;
    }
    if (*s.selinux_enforce != "1") {
        set(out, Status::Warn,
            "SELinux is permissive: libvirt still labels each guest (svirt_t with its own MCS category) and its images, but "
            "denials are only logged, so one guest's QEMU is not kept from another's disks");
        remedy(out, "Look at what would be denied, fix those labels or booleans, then enforce now and at boot.",
               {"ausearch -m avc -ts recent", "setenforce 1", "sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config"},
               "", "manual", true);
        return;
    }
    // Images on network filesystems carry no per-file labels; a boolean
    // lets svirt_t use them.
    if (s.images_mount) {
        const std::string& fs = s.images_mount->fstype;
        const char* boolean = fs.rfind("nfs", 0) == 0                 ? "virt_use_nfs"
                              : fs == "cifs" || fs == "smb3"          ? "virt_use_samba"
                              : fs.rfind("fuse", 0) == 0              ? "virt_use_fusefs"
                                                                      : nullptr;
        if (boolean) {
            auto it = s.selinux_booleans.find(boolean);
            const bool on = it != s.selinux_booleans.end() && !it->second.empty() && it->second[0] == '1';
            if (!on) {
                set(out, Status::Warn,
                    fmt::format("SELinux is enforcing and /var/lib/libvirt/images is on {} ({}), but {} is {}: guests "
                                "cannot open images there (files on {} have no per-file labels)",
                                fs, s.images_mount->source, boolean, it == s.selinux_booleans.end() ? "not in the policy" : "off", fs));
                remedy(out, fmt::format("Let confined guests use {} images (persistently).", fs), {fmt::format("setsebool -P {} 1", boolean)},
                       "", "manual", true);
                return;
            }
        }
    }
    if (s.selinux_config_mode && *s.selinux_config_mode != "enforcing") {
        set(out, Status::Warn,
            fmt::format("SELinux is enforcing now, but /etc/selinux/config says SELINUX={}, so the next boot will not enforce "
                        "and guests lose sVirt's isolation",
                        *s.selinux_config_mode));
        remedy(out, "Make the boot-time mode match.", {"sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config"},
               "", "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("SELinux is enforcing{}: libvirt runs each guest as svirt_t with its own MCS category and labels its images "
                    "svirt_image_t, so a guest cannot open another's disks (images outside /var/lib/libvirt/images need the "
                    "virt_image_t label)",
                    s.selinux_config_type ? " (" + *s.selinux_config_type + " policy)" : ""));
}

struct Profile {
    std::string name, mode;
};

std::vector<Profile> parse_profiles(const std::vector<std::string>& lines) {
    std::vector<Profile> out;
    for (const auto& l : lines) {
        auto open = l.rfind(" (");
        if (open == std::string::npos || l.back() != ')') out.push_back({l, ""});
        else out.push_back({l.substr(0, open), l.substr(open + 2, l.size() - open - 3)});
    }
    return out;
}

void apparmor(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.system.security;
    auto& ev = out.evidence;
    if (s.lsm) ev["lsm"] = *s.lsm;
    if (!s.apparmor_enabled) {
        set(out, Status::Skip, "AppArmor is not active (no /sys/module/apparmor/parameters/enabled)");
        return;
    }
    ev["enabled"] = *s.apparmor_enabled;
    if (!param_on(*s.apparmor_enabled) || (s.lsm && !has_word(*s.lsm, "apparmor", ','))) {
        set(out, Status::Skip,
            fmt::format("AppArmor is built into the kernel but not active{}", s.lsm ? " (active LSMs: " + *s.lsm + ")" : " (enabled=N)"));
        return;
    }
    if (!s.apparmor_profiles_read) {
        set(out, Status::Unknown,
            "AppArmor is enabled but /sys/kernel/security/apparmor/profiles could not be read (securityfs not mounted, or not root)");
        remedy(out, "Read the loaded profiles as root.", {"mount -t securityfs securityfs /sys/kernel/security", "aa-status"}, "", "manual", true);
        return;
    }
    const auto profiles = parse_profiles(s.apparmor_libvirt_profiles);
    const Profile* daemon = nullptr;
    const Profile* helper = nullptr;
    int guests = 0;
    for (const auto& p : profiles) {
        if (p.name == "libvirtd" || p.name == "/usr/sbin/libvirtd" || p.name == "virtqemud" || p.name == "/usr/sbin/virtqemud") {
            if (!daemon) daemon = &p;
        } else if (p.name == "virt-aa-helper" || p.name.find("/libvirt/virt-aa-helper") != std::string::npos) {
            helper = &p;
        } else if (p.name.rfind("libvirt-", 0) == 0 && p.name.find("//") == std::string::npos) {
            ++guests;
        }
    }
    ev["profiles_loaded"] = s.apparmor_profiles_total;
    ev["libvirt_profiles"] = s.apparmor_libvirt_profiles;
    ev["guest_profiles"] = guests;
    ev["profile_files"] = {{"/etc/apparmor.d/usr.sbin.libvirtd", s.libvirtd_profile_file},
                           {"/etc/apparmor.d/usr.lib.libvirt.virt-aa-helper", s.virt_aa_helper_profile_file},
                           {"/etc/apparmor.d/libvirt/TEMPLATE.qemu", s.libvirt_qemu_template}};
    if (s.libvirtd_profile_disabled) ev["disabled_link"] = "/etc/apparmor.d/disable/usr.sbin.libvirtd";
    if (s.qemu_security_driver) ev["qemu_conf_security_driver"] = *s.qemu_security_driver;

    const std::vector<std::string> reload = {
        "apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper",
        "systemctl restart libvirtd"};
    if (!daemon) {
        if (s.libvirtd_profile_disabled) {
            set(out, Status::Warn,
                "libvirtd's AppArmor profile is disabled (/etc/apparmor.d/disable/usr.sbin.libvirtd): libvirt turns its "
                "AppArmor driver off when its daemon is unconfined, so guests run without per-guest profiles");
            std::vector<std::string> cmds = {"rm /etc/apparmor.d/disable/usr.sbin.libvirtd"};
            cmds.insert(cmds.end(), reload.begin(), reload.end());
            remedy(out, "Re-enable the profile and restart libvirt; if a guest then hits a denial, allow that path in "
                        "/etc/apparmor.d/local/abstractions/libvirt-qemu instead.",
                   cmds, "", "manual", true);
            return;
        }
        if (s.libvirtd_profile_file) {
            set(out, Status::Warn,
                "libvirt's AppArmor profiles are installed but not loaded: libvirt turns its AppArmor driver off when its daemon "
                "is unconfined, so guests run without per-guest profiles");
            remedy(out, "Load the profiles and restart libvirt.", reload, "", "manual", true);
            return;
        }
        set(out, Status::Skip,
            fmt::format("AppArmor is enabled ({} profiles loaded) but libvirt's profiles are not installed, so there is no "
                        "libvirt confinement to judge",
                        s.apparmor_profiles_total));
        return;
    }
    ev["daemon_profile"] = daemon->name + " (" + daemon->mode + ")";
    if (helper) ev["helper_profile"] = helper->name + " (" + helper->mode + ")";
    if (security_driver_none(s)) {
        driver_none(out, "AppArmor");
        return;
    }
    if (daemon->mode == "complain") {
        set(out, Status::Warn,
            fmt::format("{}'s AppArmor profile is in complain mode, and libvirt then loads guests' profiles in complain mode "
                        "too: denials are logged, not enforced",
                        daemon->name));
        remedy(out, "Put libvirt's profiles back in enforce mode (aa-enforce is in apparmor-utils) and restart libvirt.",
               {"aa-enforce /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper", "systemctl restart libvirtd"},
               "", "manual", true);
        return;
    }
    if (!helper) {
        set(out, Status::Warn,
            fmt::format("{} is confined ({}) but virt-aa-helper's profile is not loaded: it writes each guest's profile, and "
                        "unconfined it is refused by the libvirtd profile's rules",
                        daemon->name, daemon->mode));
        remedy(out, "Load virt-aa-helper's profile.", {"apparmor_parser -r /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper"},
               "", "manual", true);
        return;
    }
    if (!s.libvirt_qemu_template) {
        set(out, Status::Warn,
            "libvirt's daemon profile is loaded but /etc/apparmor.d/libvirt/TEMPLATE.qemu is missing: libvirt's AppArmor driver "
            "needs it to create guest profiles and stays off without it");
        remedy(out, "Reinstall libvirt's AppArmor files.", {"apt-get install --reinstall libvirt-daemon-system"}, "",
               "manual", true);
        return;
    }
    set(out, Status::Pass,
        fmt::format("AppArmor confines libvirt: {} ({}), virt-aa-helper ({}); each guest gets a libvirt-<uuid> profile allowing "
                    "only its own disks ({} loaded now); see them with aa-status",
                    daemon->name, daemon->mode, helper->mode, guests));
}

}  // namespace

void register_system(std::vector<CheckSpec>& r) {
    r.push_back({"iommu.enabled", "IOMMU for device assignment", Level::Optional, {},
                 "ACPI tables in /sys/firmware/acpi/tables (DMAR: Intel VT-d, IVRS: AMD-Vi), /sys/class/iommu/*, "
                 "/sys/kernel/iommu_groups/* and each group's type, /dev/vfio/vfio, /proc/cmdline (intel_iommu=, amd_iommu=, "
                 "iommu=, iommu.passthrough=), /etc/default/grub, and CPUID for the vendor.",
                 "Assigning a PCI device (GPU, NIC, NVMe, SR-IOV VF) to a guest with VFIO needs an IOMMU to confine the device's "
                 "DMA to that guest's memory. Ordinary guests with virtio devices do not need one, so a host without it is still "
                 "ready: this check is optional.",
                 "Enable VT-d/AMD-Vi in the firmware setup; on Intel add intel_iommu=on to the kernel command line (AMD's is on "
                 "by default); iommu=pt optionally keeps host-owned devices untranslated.",
                 iommu});
    r.push_back({"memory.hugepages", "Huge page pools", Level::Optional, {},
                 "/sys/kernel/mm/hugepages/hugepages-*/{nr,free,resv,surplus}_hugepages, Hugepagesize in /proc/meminfo, "
                 "hugetlbfs mounts in /proc/self/mountinfo, hugepagesz=/hugepages=/default_hugepagesz= in /proc/cmdline.",
                 "Guests backed by persistent huge pages (libvirt <memoryBacking><hugepages/>) get fewer TLB misses and memory "
                 "that cannot be swapped or fragmented; QEMU uses them through a hugetlbfs mount of the same page size. Most "
                 "hosts need none (transparent hugepages cover the common case).",
                 "Reserve pages with vm.nr_hugepages (sysctl) or on the kernel command line (hugepagesz=1G hugepages=N for 1 GiB "
                 "pages) and mount hugetlbfs for each size.",
                 hugepages});
    r.push_back({"memory.thp", "Transparent hugepages", Level::Optional, {},
                 "/sys/kernel/mm/transparent_hugepage/enabled and defrag (the mode in brackets is the selected one).",
                 "QEMU marks guest RAM with madvise(MADV_HUGEPAGE); with THP at always or madvise guests get 2 MiB pages without "
                 "any configuration, with never every guest runs on 4 KiB pages.",
                 "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled; transparent_hugepage=madvise on the kernel command "
                 "line to keep it.",
                 thp});
    r.push_back({"memory.ksm", "Kernel same-page merging", Level::Optional, {},
                 "/sys/kernel/mm/ksm/run, pages_shared, pages_sharing, full_scans.",
                 "KSM merges identical pages across guests (QEMU marks guest RAM mergeable), which fits more similar guests in "
                 "RAM at some CPU cost; merged pages are a known cross-guest side channel, so it is off by default on many "
                 "distributions. Informational.",
                 "echo 1 > /sys/kernel/mm/ksm/run to start merging (ksmtuned can manage it), echo 2 to stop and unmerge.",
                 ksm});
    r.push_back({"memory.available", "Memory available for guests", Level::Recommended, {},
                 "MemTotal, MemAvailable (MemFree on kernels without it) from /proc/meminfo, and free huge pages.",
                 "A guest needs its whole RAM size plus QEMU's overhead; with under 1 GiB available even a small guest fails to "
                 "start or pushes the host into swapping or the OOM killer. Memory in huge page pools is not available to guests "
                 "that do not use huge pages.",
                 "Stop what uses the memory, shrink unused huge page pools, or add RAM.",
                 available});
    r.push_back({"kernel.cgroups", "Control groups for libvirt", Level::Recommended, {},
                 "cgroup and cgroup2 mounts in /proc/self/mountinfo, /proc/cgroups (enabled column), cgroup.controllers and "
                 "cgroup.subtree_control of the unified hierarchy, /proc/cmdline (cgroup_disable=, "
                 "systemd.unified_cgroup_hierarchy=).",
                 "libvirt puts every guest in its own cgroup to apply CPU shares and pinning (cpu, cpuset), memory limits "
                 "(memory), disk I/O tuning (blkio/io) and, on v1, device access lists (devices; v2 uses BPF). These are "
                 "qemu.conf's default cgroup_controllers; pids is not among them. Without them guests still run, but tuning "
                 "fails and guests are not contained.",
                 "Boot with the controllers enabled (no cgroup_disable=) and mounted: systemd mounts cgroup v2 at /sys/fs/cgroup.",
                 cgroups});
    r.push_back({"confidential.sev", "AMD SEV encrypted guests", Level::Optional, {},
                 "CPUID 8000001Fh (SME, SEV, SEV-ES, SEV-SNP bits, encrypted guest count), the sev flag in /proc/cpuinfo (the "
                 "kernel clears it when firmware leaves memory encryption off), kvm_amd's sev, sev_es, sev_snp parameters, "
                 "/dev/sev, misc.capacity of the unified cgroup, mem_encrypt= and kvm_amd.sev= in /proc/cmdline.",
                 "SEV encrypts each guest's memory with its own key so the host cannot read it; it needs the CPU, the firmware "
                 "(SMEE and the ASID split), the PSP firmware (/dev/sev) and kvm_amd to agree. Only confidential guests need it.",
                 "Enable SME/SEV(-ES/-SNP) in the firmware setup, load ccp, and kvm_amd with sev=1 sev_es=1.",
                 sev});
    r.push_back({"confidential.tdx", "Intel TDX trust domains", Level::Optional, {},
                 "kvm_intel's tdx parameter, the tdx_host_platform and tdx_guest flags in /proc/cpuinfo, CPUID leaf 21h (a trust "
                 "domain sees \"IntelTDX    \"), /sys/firmware/tdx. The kernel log, where the TDX module reports its "
                 "initialisation, is not read.",
                 "TDX runs guests as trust domains whose memory and registers the host cannot read; it needs a TDX-capable Xeon, "
                 "TME-MK and TDX enabled in the firmware with the TDX module loaded, and a kernel whose kvm_intel has tdx=1 "
                 "(Linux 6.16+). Only confidential guests need it.",
                 "Enable TME, TME-MK and TDX in the firmware setup, boot Linux 6.16 or later, and load kvm_intel with tdx=1.",
                 tdx});
    r.push_back({"security.selinux", "SELinux and libvirt (sVirt)", Level::Optional, {},
                 "/sys/fs/selinux/enforce, /sys/fs/selinux/booleans (virt_use_nfs, virt_use_samba, virt_use_fusefs, "
                 "virt_use_usb, virt_use_sanlock, virt_use_execmem, virt_sandbox_use_all_caps), /etc/selinux/config, "
                 "/sys/kernel/security/lsm, security_driver in /etc/libvirt/qemu.conf, the filesystem of /var/lib/libvirt/images.",
                 "With SELinux, libvirt (sVirt) runs each guest's QEMU as svirt_t with a unique MCS category and labels its disk "
                 "images to match, so a compromised guest cannot touch other guests' disks. Images on NFS/CIFS have no per-file "
                 "labels and need a boolean (virt_use_nfs, virt_use_samba); images elsewhere need the virt_image_t label. "
                 "Turning SELinux off removes that isolation; label or set the boolean instead.",
                 "setsebool -P virt_use_nfs 1 for NFS images; semanage fcontext -a -t virt_image_t '/srv/vms(/.*)?' && "
                 "restorecon -R /srv/vms for a custom image directory; ausearch -m avc to see denials.",
                 selinux});
    r.push_back({"security.apparmor", "AppArmor and libvirt", Level::Optional, {},
                 "/sys/module/apparmor/parameters/enabled, /sys/kernel/security/apparmor/profiles (libvirtd, virt-aa-helper, "
                 "libvirt-<uuid> and their modes), /etc/apparmor.d/usr.sbin.libvirtd, usr.lib.libvirt.virt-aa-helper, "
                 "libvirt/TEMPLATE.qemu, disable/usr.sbin.libvirtd, /sys/kernel/security/lsm, security_driver in "
                 "/etc/libvirt/qemu.conf.",
                 "On AppArmor hosts (Debian, Ubuntu, SUSE) libvirt confines each guest with a libvirt-<uuid> profile that "
                 "virt-aa-helper generates from the guest's XML, allowing only its own disks. libvirt only does this when "
                 "libvirtd itself runs confined. A disk path outside the usual places is denied until it is listed in "
                 "/etc/apparmor.d/local/abstractions/libvirt-qemu; disabling the profile removes the isolation instead.",
                 "apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper; "
                 "aa-status to see modes.",
                 apparmor});
}

}  // namespace kvmready::checks
