// probe_system: IOMMU, memory, cgroups, confidential computing and security
// modules. Only file reads, listings and stats through Host: everything here
// is in /proc, /sys and /etc, so it costs tens of microseconds and a recorded
// tree replays it exactly. A listed directory's entries are stat()ed or read,
// because a recording keeps only what was looked at.
#include <algorithm>
#include <charconv>
#include <sstream>

#include "core/mountinfo.hpp"
#include "core/probe.hpp"
#include "util/text.hpp"

namespace kvmready {

std::optional<std::string> read_trimmed(const host::Host& h, const std::string& path) {
    auto v = h.read_file(path);
    if (!v) return std::nullopt;
    return util::trim(*v);
}

namespace {

using util::trim;

std::optional<uint64_t> to_u64(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p == s.data()) return std::nullopt;
    return v;
}

std::optional<uint64_t> read_u64(const host::Host& h, const std::string& path) {
    auto v = h.read_file(path);
    if (!v) return std::nullopt;
    return to_u64(*v);
}

std::vector<std::string> split_ws(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

void probe_mounts(const MountTable& table, SystemFacts& s) {
    if (!table.read) return;
    s.mountinfo_read = true;
    for (const auto& m : table.mounts) {
        const std::string& t = m.entry.fstype;
        if (t == "cgroup" || t == "cgroup2" || t == "hugetlbfs" || t == "securityfs" || t == "selinuxfs") s.mounts.push_back(m.entry);
    }
    // The deepest mount holding libvirt's default image directory decides
    // which filesystem (NFS, CIFS, ...) its images live on.
    if (const Mount* m = mount_covering(table.mounts, "/var/lib/libvirt/images")) s.security.images_mount = m->entry;
}

// The IOMMU options of the running kernel's build configuration. A line
// missing from a whole config means its dependencies are off: not built.
void probe_kernel_config(const host::Host& h, const std::string& release, IommuFacts& io) {
    // A recorded tree's osrelease is a stranger's text: one path component.
    if (release.empty() || release.find('/') != std::string::npos || release == "..") return;
    const std::string path = "/boot/config-" + release;
    auto text = h.read_file(path);
    if (!text || text->find("CONFIG_") == std::string::npos) return;
    io.kernel_config = path;
    for (const char* key : {"CONFIG_INTEL_IOMMU", "CONFIG_AMD_IOMMU", "CONFIG_IRQ_REMAP"}) io.kernel_config_options[key] = "n";
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
        const auto eq = line.find('=');
        if (line.rfind("CONFIG_", 0) != 0 || eq == std::string::npos) continue;
        auto it = io.kernel_config_options.find(line.substr(0, eq));
        if (it != io.kernel_config_options.end()) it->second = trim(line.substr(eq + 1));
    }
}

void probe_iommu(const host::Host& h, const std::string& release, IommuFacts& io) {
    const std::string tables = "/sys/firmware/acpi/tables";
    if (h.stat(tables).exists) {
        io.acpi_tables_read = true;
        for (const auto& name : h.list_dir(tables)) {
            // Files only: data/ and dynamic/ hold copies and hot-loaded SSDTs.
            if (h.stat(tables + "/" + name).type != "file") continue;
            io.acpi_tables.push_back(name);
            if (name == "DMAR") io.dmar = true;
            if (name == "IVRS") io.ivrs = true;
        }
    }
    for (const auto& name : h.list_dir("/sys/class/iommu")) {
        IommuUnit u;
        u.name = name;
        const std::string base = "/sys/class/iommu/" + name;
        if (auto v = read_trimmed(h, base + "/intel-iommu/ecap")) u.capability = *v;
        else if (auto a = read_trimmed(h, base + "/amd-iommu/features")) u.capability = *a;
        else (void)h.stat(base);
        io.units.push_back(std::move(u));
    }
    const std::string groups = "/sys/kernel/iommu_groups";
    io.groups_dir = h.stat(groups).exists;
    for (const auto& g : h.list_dir(groups)) {
        // Reading each group's type also keeps the group in a recording.
        auto type = read_trimmed(h, groups + "/" + g + "/type");
        ++io.groups;
        io.domain_types[type ? *type : "unknown"]++;
    }
    io.vfio = h.stat("/dev/vfio/vfio").exists;
    if ((io.dmar || io.ivrs) && io.groups == 0) probe_kernel_config(h, release, io);
}

// Value of KEY="..." (or KEY=...) in a shell-style file such as /etc/default/grub.
std::optional<std::string> shell_var(const std::string& text, const std::string& key) {
    std::optional<std::string> val;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::string t = trim(line);
        if (t.rfind(key + "=", 0) != 0) continue;
        std::string v = t.substr(key.size() + 1);
        if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) {
            auto end = v.find(v.front(), 1);
            v = v.substr(1, end == std::string::npos ? std::string::npos : end - 1);
        }
        val = v;  // the last assignment wins, as in the shell
    }
    return val;
}

void probe_boot(const host::Host& h, BootFacts& b) {
    if (auto g = h.read_file("/etc/default/grub")) {
        b.grub_default_read = true;
        b.grub_cmdline_linux = shell_var(*g, "GRUB_CMDLINE_LINUX");
        b.grub_cmdline_default = shell_var(*g, "GRUB_CMDLINE_LINUX_DEFAULT");
    }
    b.update_grub = h.stat("/usr/sbin/update-grub").exists;
    b.grubby = h.stat("/usr/sbin/grubby").exists || h.stat("/sbin/grubby").exists;
    b.kernel_cmdline_file = h.stat("/etc/kernel/cmdline").exists;
}

void probe_memory(const host::Host& h, MemoryFacts& m) {
    if (auto mi = h.read_file("/proc/meminfo")) {
        m.meminfo_read = true;
        std::istringstream in(*mi);
        for (std::string line; std::getline(in, line);) {
            auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            const std::string key = line.substr(0, colon);
            auto v = to_u64(std::string_view(line).substr(colon + 1));
            if (key == "MemTotal") m.mem_total_kb = v;
            else if (key == "MemFree") m.mem_free_kb = v;
            else if (key == "MemAvailable") m.mem_available_kb = v;
            else if (key == "Hugepagesize") m.hugepagesize_kb = v;
            else if (key == "CommitLimit") m.commit_limit_kb = v;
            else if (key == "Committed_AS") m.committed_as_kb = v;
        }
    }
    const std::string hp = "/sys/kernel/mm/hugepages";
    m.hugepages_dir = h.stat(hp).exists;
    for (const auto& d : h.list_dir(hp)) {
        // hugepages-2048kB
        if (d.rfind("hugepages-", 0) != 0) continue;
        auto size = to_u64(std::string_view(d).substr(10));
        if (!size) continue;
        HugePagePool p;
        p.size_kb = *size;
        const std::string base = hp + "/" + d + "/";
        p.nr = read_u64(h, base + "nr_hugepages");
        p.free = read_u64(h, base + "free_hugepages");
        p.resv = read_u64(h, base + "resv_hugepages");
        p.surplus = read_u64(h, base + "surplus_hugepages");
        m.pools.push_back(p);
    }
    std::sort(m.pools.begin(), m.pools.end(), [](const auto& a, const auto& b) { return a.size_kb < b.size_kb; });
    m.thp_enabled = read_trimmed(h, "/sys/kernel/mm/transparent_hugepage/enabled");
    m.thp_defrag = read_trimmed(h, "/sys/kernel/mm/transparent_hugepage/defrag");
    m.ksm_run = read_trimmed(h, "/sys/kernel/mm/ksm/run");
    if (m.ksm_run) {
        m.ksm_pages_shared = read_u64(h, "/sys/kernel/mm/ksm/pages_shared");
        m.ksm_pages_sharing = read_u64(h, "/sys/kernel/mm/ksm/pages_sharing");
        m.ksm_full_scans = read_u64(h, "/sys/kernel/mm/ksm/full_scans");
    }
    m.overcommit_memory = read_trimmed(h, "/proc/sys/vm/overcommit_memory");
    if (m.overcommit_memory == "2") {
        m.overcommit_ratio = read_u64(h, "/proc/sys/vm/overcommit_ratio");
        m.overcommit_kbytes = read_u64(h, "/proc/sys/vm/overcommit_kbytes");
    }
}

void probe_cgroups(const host::Host& h, SystemFacts& s) {
    auto& c = s.cgroups;
    if (auto pc = h.read_file("/proc/cgroups")) {
        c.proc_cgroups_read = true;
        std::istringstream in(*pc);
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line[0] == '#') continue;
            auto w = split_ws(line);
            if (w.size() < 4) continue;
            CgroupController cc;
            cc.name = w[0];
            cc.hierarchy = static_cast<int>(to_u64(w[1]).value_or(0));
            cc.num_cgroups = static_cast<int>(to_u64(w[2]).value_or(0));
            cc.enabled = w[3] == "1";
            c.controllers.push_back(cc);
        }
    }
    // The unified hierarchy: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified
    // on systemd's hybrid layout. Prefer the canonical place when both exist.
    for (const auto& m : s.mounts) {
        if (m.fstype != "cgroup2") continue;
        if (c.v2_mountpoint.empty() || m.mountpoint == "/sys/fs/cgroup") c.v2_mountpoint = m.mountpoint;
    }
    if (!c.v2_mountpoint.empty()) {
        c.v2_controllers = read_trimmed(h, c.v2_mountpoint + "/cgroup.controllers");
        c.v2_subtree_control = read_trimmed(h, c.v2_mountpoint + "/cgroup.subtree_control");
        c.misc_capacity = read_trimmed(h, c.v2_mountpoint + "/misc.capacity");
    }
    c.self_cgroup = read_trimmed(h, "/proc/self/cgroup");
}

void probe_confidential(const host::Host& h, ConfidentialFacts& cf) {
    auto st = h.stat("/dev/sev");
    cf.dev_sev = st.exists;
    cf.dev_sev_type = st.exists ? st.type : "";
    cf.sys_firmware_tdx = h.stat("/sys/firmware/tdx").exists;
}

// Profiles libvirt loads or generates: the daemons', the helper's, and one
// libvirt-<uuid> per running guest.
bool libvirt_profile(const std::string& name) {
    return name.rfind("libvirt", 0) == 0 || name.rfind("virt-aa-helper", 0) == 0 || name.rfind("virtqemud", 0) == 0 ||
           name.rfind("/usr/sbin/libvirtd", 0) == 0 || name.rfind("/usr/sbin/virtqemud", 0) == 0 ||
           name.find("/libvirt/virt-aa-helper") != std::string::npos;
}

void probe_security(const host::Host& h, SecurityFacts& sec) {
    sec.lsm = read_trimmed(h, "/sys/kernel/security/lsm");

    const std::string selinux = "/sys/fs/selinux";
    sec.selinuxfs = h.stat(selinux).exists;
    if (sec.selinuxfs) {
        sec.selinux_enforce = read_trimmed(h, selinux + "/enforce");
        const auto all = h.list_dir(selinux + "/booleans");
        sec.selinux_policy_loaded = !all.empty();
        for (const char* b : {"virt_use_nfs", "virt_use_samba", "virt_use_fusefs", "virt_use_usb", "virt_use_sanlock",
                              "virt_use_execmem", "virt_sandbox_use_all_caps"}) {
            if (std::find(all.begin(), all.end(), b) == all.end()) continue;
            if (auto v = read_trimmed(h, selinux + "/booleans/" + b)) sec.selinux_booleans[b] = *v;
        }
        // A policy without virt booleans still has others; keep one in a
        // recording so that a replay also sees a loaded policy.
        if (sec.selinux_booleans.empty() && !all.empty()) (void)h.read_file(selinux + "/booleans/" + all.front());
    }
    if (auto cfg = h.read_file("/etc/selinux/config")) {
        sec.selinux_config_mode = shell_var(*cfg, "SELINUX");
        sec.selinux_config_type = shell_var(*cfg, "SELINUXTYPE");
    }

    sec.apparmor_enabled = read_trimmed(h, "/sys/module/apparmor/parameters/enabled");
    if (auto prof = h.read_file("/sys/kernel/security/apparmor/profiles")) {
        sec.apparmor_profiles_read = true;
        std::istringstream in(*prof);
        for (std::string line; std::getline(in, line);) {
            line = trim(line);
            if (line.empty()) continue;
            ++sec.apparmor_profiles_total;
            if (libvirt_profile(line)) sec.apparmor_libvirt_profiles.push_back(line);
        }
    }
    sec.libvirtd_profile_file = h.stat("/etc/apparmor.d/usr.sbin.libvirtd").exists;
    sec.virt_aa_helper_profile_file = h.stat("/etc/apparmor.d/usr.lib.libvirt.virt-aa-helper").exists;
    sec.libvirtd_profile_disabled = h.stat("/etc/apparmor.d/disable/usr.sbin.libvirtd").exists;
    sec.libvirt_qemu_template = h.stat("/etc/apparmor.d/libvirt/TEMPLATE.qemu").exists;

    if (auto conf = h.read_file("/etc/libvirt/qemu.conf")) {
        sec.qemu_conf_read = true;
        std::istringstream in(*conf);
        for (std::string line; std::getline(in, line);) {
            std::string t = trim(line);
            if (t.rfind("security_driver", 0) != 0) continue;
            auto eq = t.find('=');
            if (eq == std::string::npos) continue;
            sec.qemu_security_driver = trim(t.substr(eq + 1));
        }
    }
}

}  // namespace

void probe_system(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    auto& s = f.system;
    s.probed = true;
    MountTable own;
    probe_mounts(given_or_read(opt.mounts, h, own), s);
    probe_iommu(h, f.kernel.release, s.iommu);
    probe_boot(h, s.boot);
    probe_memory(h, s.memory);
    probe_cgroups(h, s);
    probe_confidential(h, s.confidential);
    probe_security(h, s.security);
}

}  // namespace kvmready
