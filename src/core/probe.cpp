#include "core/mountinfo.hpp"
#include "core/probe.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <thread>

namespace kvmready {

namespace {

using util::trim;

using util::words;

std::string trimmed_or_empty(const host::Host& h, const std::string& path) {
    return trim(h.read_file(path).value_or(""));
}

// Modules that matter for KVM: the core, every vendor/flavour module the
// kernel may have (kvm_intel, kvm_amd, kvm_pvm, ...), and irqbypass.
bool is_kvm_module(const std::string& name) {
    return name == "kvm" || name.rfind("kvm_", 0) == 0 || name.rfind("kvm-", 0) == 0 || name == "irqbypass";
}

std::string module_name_from_path(std::string p) {
    auto slash = p.rfind('/');
    if (slash != std::string::npos) p = p.substr(slash + 1);
    auto dot = p.find(".ko");
    if (dot != std::string::npos) p = p.substr(0, dot);
    std::replace(p.begin(), p.end(), '-', '_');
    return p;
}

void probe_modules(const host::Host& h, Facts& f) {
    auto& m = f.modules;
    m.module_support = h.stat("/proc/modules").exists;
    m.modules_disabled = trimmed_or_empty(h, "/proc/sys/kernel/modules_disabled") == "1";
    for (const auto& name : h.list_dir("/sys/module")) {
        if (!is_kvm_module(name)) continue;
        ModuleInfo mi;
        mi.name = name;
        const std::string base = "/sys/module/" + name;
        auto init = h.read_file(base + "/initstate");
        mi.builtin = !init.has_value();
        mi.initstate = trim(init.value_or(""));
        for (const auto& p : h.list_dir(base + "/parameters")) {
            auto v = h.read_file(base + "/parameters/" + p);
            if (v) mi.parameters[p] = trim(*v);
        }
        m.present.push_back(std::move(mi));
    }
    if (f.kernel.release.empty()) return;
    const std::string dir = "/lib/modules/" + f.kernel.release;
    m.modules_dir_found = h.stat(dir).exists;
    // modules.dep lists every loadable module with its path; kvm lines are few.
    if (auto dep = h.read_file(dir + "/modules.dep")) {
        std::istringstream in(*dep);
        for (std::string line; std::getline(in, line);) {
            auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string name = module_name_from_path(line.substr(0, colon));
            if (is_kvm_module(name)) m.installed.push_back(name);
        }
    }
    std::sort(m.installed.begin(), m.installed.end());
}

void probe_cpu(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    auto& c = f.cpu;
    if (opt.cpuid_dump) {
        c.source = "dump:" + opt.cpuid_dump_name;
        c.dump = *opt.cpuid_dump;
    } else {
        c.source = h.is_live() ? "live" : "recorded";
        c.dump = h.cpuid(host::Host::CpuidScope::Essential);
    }
    c.available = !c.dump.leaves.empty();
    if (!c.available) c.unavailable_reason = h.is_live() ? "CPUID returned nothing" : "no CPUID dump recorded in " + h.source();
    if (auto text = h.read_file("/proc/cpuinfo")) parse_cpuinfo(*text, c);
}

void probe_msrs(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    constexpr uint32_t kFeatureControl = 0x3a;
    constexpr uint32_t kVmCr = 0xc0010114;
    auto from_host = [&](uint32_t idx) {
        auto v = h.read_msr(0, idx);
        return MsrReading{v.value, v.error};
    };
    if (opt.cpuid_dump) {
        // A customer's dump may carry MSRs (InstLatX64 full reports); it
        // describes that CPU, not this host, so never mix in live reads.
        f.msr.source = "dump";
        auto get = [&](uint32_t idx) {
            auto it = opt.cpuid_dump->msrs.find(idx);
            if (it == opt.cpuid_dump->msrs.end()) return MsrReading{std::nullopt, "not present in the CPUID dump"};
            return MsrReading{it->second, ""};
        };
        f.msr.feature_control = get(kFeatureControl);
        f.msr.vm_cr = get(kVmCr);
        return;
    }
    f.msr.source = h.is_live() ? "live" : "recorded";
    f.msr.feature_control = from_host(kFeatureControl);
    f.msr.vm_cr = from_host(kVmCr);
}

// "232 kvm" in /proc/misc: the minor KVM registered, if it did.
void probe_misc(const host::Host& h, DeviceFacts& d) {
    auto misc = read_misc_devices(h);
    if (!misc) return;
    d.misc_read = true;
    if (auto it = misc->find("kvm"); it != misc->end()) d.misc_minor = it->second;
}

void probe_device(const host::Host& h, Facts& f) {
    auto& d = f.device;
    probe_misc(h, d);
    d.stat = h.stat(d.path);
    if (!d.stat.exists) return;
    d.acl = h.acl(d.path);
    const std::string passwd = h.read_file("/etc/passwd").value_or("");
    const std::string group = h.read_file("/etc/group").value_or("");
    if (auto u = host::lookup_uid_in_db(passwd, group, d.stat.uid)) d.owner_name = u->name;
    std::istringstream in(group);
    for (std::string line; std::getline(in, line);) {
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        auto c = line.find(':', b + 1);
        if (a == std::string::npos || b == std::string::npos || c == std::string::npos) continue;
        if (line.substr(b + 1, c - b - 1) == std::to_string(d.stat.gid)) {
            d.group_name = line.substr(0, a);
            break;
        }
    }
}

void probe_access(const host::Host& h, const ProbeOptions& opt, Facts& f) {
    auto& a = f.access;
    a.requested_user = opt.request.user;
    auto current = h.current_user();
    if (opt.request.user.empty()) {
        a.is_current = true;
        a.user = current;
        if (!current) a.lookup_error = "the recording does not say which user ran it; pass --user NAME";
    } else {
        a.user = h.lookup_user(opt.request.user);
        a.is_current = current && a.user && current->uid == a.user->uid;
        if (!a.user) a.lookup_error = "no such user: " + opt.request.user;
    }
    if (a.is_current) {
        a.process_groups = h.process_groups();
        if (f.device.stat.exists) a.open_errno = h.try_open_rw(f.device.path);
    }
}

void probe_hypervisor(const host::Host& h, const MountTable& mounts, Facts& f) {
    auto& v = f.hypervisor;
    for (const char* key : {"sys_vendor", "product_name", "product_version", "bios_vendor", "board_vendor", "chassis_vendor"}) {
        auto val = trimmed_or_empty(h, std::string("/sys/class/dmi/id/") + key);
        if (!val.empty()) v.dmi[key] = val;
    }
    v.sys_hypervisor_type = trimmed_or_empty(h, "/sys/hypervisor/type");
    if (auto env = h.read_file("/proc/1/environ")) {
        std::string_view s(*env);
        for (size_t pos = 0; pos < s.size();) {
            size_t end = s.find('\0', pos);
            if (end == std::string_view::npos) end = s.size();
            auto kv = s.substr(pos, end - pos);
            if (kv.rfind("container=", 0) == 0) v.container_env = std::string(kv.substr(10));
            pos = end + 1;
        }
    }
    v.containerenv_file = h.stat("/run/.containerenv").exists;
    v.dockerenv_file = h.stat("/.dockerenv").exists;
    v.pid1_cgroup = trim(h.read_file("/proc/1/cgroup").value_or(""));
    // The last mount of a path is the one in effect.
    for (const auto& m : mounts.mounts) {
        if (m.entry.mountpoint == "/") v.root_fstype = m.entry.fstype;
        if (m.entry.mountpoint == "/dev") f.device.dev_fstype = m.entry.fstype;
    }
    std::string lower = f.kernel.release;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    v.wsl = lower.find("microsoft") != std::string::npos || lower.find("wsl") != std::string::npos;
}

// /etc/os-release ID and ID_LIKE ("ubuntu debian"), for package-manager hints.
std::string read_os_id(const host::Host& h) {
    auto text = h.read_file("/etc/os-release");
    if (!text) text = h.read_file("/usr/lib/os-release");  // only when the first is missing
    std::string id, like;
    std::istringstream in(text.value_or(""));
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string key = line.substr(0, eq), val = trim(line.substr(eq + 1));
        if (val.size() >= 2 && (val.front() == '"' || val.front() == '\'')) val = val.substr(1, val.size() - 2);
        if (key == "ID") id = val;
        else if (key == "ID_LIKE") like = val;
    }
    return like.empty() ? id : id + " " + like;
}

}  // namespace

std::optional<std::map<std::string, unsigned>> read_misc_devices(const host::Host& h) {
    auto text = h.read_file("/proc/misc");
    if (!text) return std::nullopt;
    std::map<std::string, unsigned> out;
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
        auto w = words(line);
        if (w.size() != 2 || w[0].empty() || w[0].size() > 5 ||
            !std::all_of(w[0].begin(), w[0].end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        out[w[1]] = static_cast<unsigned>(std::stoul(w[0]));
    }
    return out;
}

void parse_cpuinfo(const std::string& text, CpuFacts& out) {
    std::istringstream in(text);
    out.cpuinfo_read = true;
    for (std::string line; std::getline(in, line);) {
        if (trim(line).empty()) break;  // first stanza only
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = trim(line.substr(0, colon));
        std::string val = trim(line.substr(colon + 1));
        if (key == "vendor_id") out.cpuinfo_vendor = val;
        else if (key == "model name") out.cpuinfo_model_name = val;
        else if (key == "flags") out.cpuinfo_flags = words(val);
        else if (key == "vmx flags") {
            out.cpuinfo_has_vmx_flags_line = true;
            out.cpuinfo_vmx_flags = words(val);
        }
    }
}

Facts probe(const host::Host& h, const ProbeOptions& opt) {
    Facts f;
    f.source = h.source();
    f.request = opt.request;
    // libvirt answers in milliseconds, or never (a hung daemon): beside the rest.
    std::thread virt_thread;
    if (opt.areas & kAreaVirt) virt_thread = std::thread([&] { probe_virt(h, opt, f); });
    // The ioctl test is the slowest probe (VM creation, ~2 ms) and runs on
    // this thread; the file reads go to a new one. A new thread starts on an
    // idle vCPU, and waking that costs ~1 ms in a VM: the reads absorb that
    // delay, the critical path does not.
    f.kernel.release = trimmed_or_empty(h, "/proc/sys/kernel/osrelease");
    std::thread files([&] {
        // Four of these areas ask mountinfo, which the kernel formats anew
        // for each read: read once, here rather than before the threads
        // start, where it would delay the ioctl test.
        const MountTable mounts = read_mount_table(h);
        ProbeOptions fopt = opt;
        fopt.mounts = &mounts;
        f.kernel.cmdline = trimmed_or_empty(h, "/proc/cmdline");
        f.kernel.hostname = trimmed_or_empty(h, "/proc/sys/kernel/hostname");
        f.identity = h.identity();
        f.kernel.os_id = read_os_id(h);
        probe_cpu(h, fopt, f);
        probe_msrs(h, fopt, f);
        probe_modules(h, f);
        probe_device(h, f);
        probe_access(h, fopt, f);
        probe_hypervisor(h, mounts, f);
        if (opt.areas & kAreaNet) probe_net(h, fopt, f);
        if (opt.areas & kAreaSystem) probe_system(h, fopt, f);
        if (opt.areas & kAreaDevices) probe_devices(h, fopt, f);
    });
    if (opt.kvm_api) {
        f.kvm = h.probe_kvm("/dev/kvm");
    } else {
        f.kvm.not_attempted_reason = "not requested";
    }
    files.join();
    // The kernel log explains an absent or failing KVM; a healthy host
    // does not pay for reading it.
    f.kernel_log.reason = kernel_log_needed(f);
    if (!f.kernel_log.reason.empty() || opt.record_kernel_log) {
        host::KernelLog log = h.kernel_log();
        if (!f.kernel_log.reason.empty()) {
            f.kernel_log.read = true;
            f.kernel_log.log = std::move(log);
        }
    }
    if (f.kernel_log.reason.empty()) f.kernel_log.reason = "not needed: KVM is present and works";
    if (virt_thread.joinable()) {
        virt_thread.join();
        // os-release is read once, by the core; the virt facts keep their
        // copy for the JSON they always carried.
        f.virt.os_id = f.kernel.os_id;
    }
    if (opt.config) probe_config(h, opt, f);
    return f;
}

std::string kernel_log_needed(const Facts& f) {
    const bool vendor = std::any_of(f.modules.present.begin(), f.modules.present.end(),
                                    [](const ModuleInfo& m) { return m.name.rfind("kvm_", 0) == 0; });
    if (!vendor) return "no KVM vendor or flavour module is present";
    if (f.device.misc_read && !f.device.misc_minor) return "no KVM device is registered (/proc/misc has no kvm)";
    if (!f.device.stat.exists) return "/dev/kvm does not exist";
    const auto& k = f.kvm;
    // A permission problem is explained by the file's mode, not the kernel.
    if (k.attempted && !k.ran && k.open_errno != EACCES && k.open_errno != EPERM) return "the /dev/kvm functional test failed";
    return "";
}

}  // namespace kvmready
