// kvm.*: the kernel side. kvm.api, the functional ioctl test, is the ground
// truth for "KVM works"; the others explain why it does not.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "core/derived.hpp"

namespace kvmready::checks {

namespace {

constexpr unsigned kKvmMajor = 10, kKvmMinor = 232;

std::vector<std::string> module_list(const Facts& f) {
    std::vector<std::string> v;
    for (const auto& m : f.modules.present)
        v.push_back(m.name + (m.builtin ? " (built-in)" : m.initstate == "live" ? "" : " (" + m.initstate + ")"));
    return v;
}

std::string expected_vendor_module(const Facts& f) {
    if (!f.cpu.available) return "";
    return vendor_module(cpu_class(cpuid::decode(f.cpu.dump).vendor));
}

bool installed(const Facts& f, const std::string& m) {
    return std::find(f.modules.installed.begin(), f.modules.installed.end(), m) != f.modules.installed.end();
}

// When the CPU side already failed, loading a vendor module cannot help:
// point at the cause instead of suggesting a modprobe that will fail.
const char* cpu_cause(const Results& r) {
    if (status(r, ids::cpu_virt_extensions) == Status::Fail) return ids::cpu_virt_extensions;
    if (status(r, ids::cpu_firmware_enabled) == Status::Fail) return ids::cpu_firmware_enabled;
    return nullptr;
}

const char* registration_text(KvmRegistration r) {
    switch (r) {
    case KvmRegistration::Registered: return "registered (kvm in /proc/misc)";
    case KvmRegistration::NotRegistered: return "not registered (/proc/misc has no kvm)";
    case KvmRegistration::Unknown: return "unknown (/proc/misc not read)";
    }
    return "unknown";
}

// The kernel's evidence, for a finding's evidence object.
void kernel_evidence(const KvmState& s, nlohmann::ordered_json& ev) {
    if (!s.kernel_lines.empty()) ev["kernel_log"] = s.kernel_lines;
    else if (!s.log_note.empty()) ev["kernel_log_note"] = s.log_note;
}

// What can really help when a present KVM module did not bind, by the
// reason the kernel gave. Never mknod: without a registered device a node
// only gives ENXIO.
void unbound_remedy(const Facts& f, const KvmState& s, const Results& r, Finding& out) {
    const char* cause = cpu_cause(r);
    switch (s.absence) {
    case KvmAbsence::PvmGuest: {
        OuterHypervisor hv = r.derived().outer;
        hv.key = "pvm";
        remedy(out, nested_advice(hv, f).text + kTcgMeanwhile, {}, "", "manual", false);
        return;
    }
    case KvmAbsence::DisabledByFirmware:
        remedy(out,
               "Enable virtualization in the firmware setup (Intel Virtualization Technology / SVM Mode), save, and power-cycle; "
               "the module binds at the next boot." + std::string(kTcgMeanwhile),
               {}, "", "manual", false);
        return;
    case KvmAbsence::NoHardwareSupport:
        if (cause) {
            remedy(out, fmt::format("Fix {} first: the module binds once the CPU offers VT-x/AMD-V.{}", cause, kTcgMeanwhile), {}, "",
                   "manual", false);
        } else {
            const auto adv = nested_advice(r.derived().outer, f);
            remedy(out, adv.text + kTcgMeanwhile, adv.commands, "", "manual", false);
        }
        return;
    case KvmAbsence::OtherError:
        remedy(out, "The kernel's message above says why; fix that, then reload the module (or reboot for a built-in one).",
               {"dmesg | grep -i -e kvm -e svm -e vmx"}, "", "manual", true);
        return;
    case KvmAbsence::None:
        break;
    }
    if (cause) {
        remedy(out, fmt::format("Fix {} first: the module binds once the CPU offers usable VT-x/AMD-V.{}", cause, kTcgMeanwhile), {}, "",
               "manual", false);
        return;
    }
    remedy(out, "The kernel logs why a KVM module declined at boot; read it as root.", {"dmesg | grep -i -e kvm -e svm -e vmx"}, "",
           "manual", true);
}

void module(const Facts& f, const Results& r, Finding& out) {
    const auto& m = f.modules;
    auto& ev = out.evidence;
    ev["present"] = module_list(f);
    ev["installed_for_kernel"] = m.installed;
    ev["module_support"] = m.module_support;
    ev["kernel"] = f.kernel.release;
    const std::string want = expected_vendor_module(f);
    if (!want.empty()) ev["expected_vendor_module"] = want;
    const KvmState& s = r.derived().kvm;
    const ModuleInfo* core = s.core;
    const ModuleInfo* flav = s.flavour;
    ev["device_registration"] = registration_text(s.registration);
    if (core && flav) {
        std::string how = flav->builtin ? "built into the kernel" : "loaded";
        if (!flav->builtin && flav->initstate != "live") {
            set(out, Status::Warn, fmt::format("{} is {} (still initialising or unloading)", flav->name, flav->initstate));
            return;
        }
        if (!s.flavour_bound()) {
            kernel_evidence(s, ev);
            set(out, Status::Fail,
                fmt::format("kvm and {} are {}, but no KVM device is registered (/proc/misc has no kvm): {}", flav->name, how,
                            absence_clause(s, flav->name)));
            unbound_remedy(f, s, r, out);
            return;
        }
        set(out, Status::Pass, fmt::format("kvm and {} are {}", describe_flavour(flav->name), how));
        return;
    }
    const std::string target = want.empty() ? "kvm_intel or kvm_amd" : want;
    if (core && !flav) {
        set(out, Status::Fail, fmt::format("kvm is present but no vendor module ({}) is loaded", target));
    } else {
        set(out, Status::Fail, "no KVM module is loaded or built in");
    }
    kernel_evidence(s, ev);
    if (s.standing_cause()) {
        // The kernel tried and said why (a modprobe at boot or by hand).
        out.message += ": " + absence_clause(s, want.empty() ? "the vendor module" : want);
        unbound_remedy(f, s, r, out);
        return;
    }
    // Say that the kernel's own reason was not available, rather than guess.
    if (f.kernel_log.read && !s.log_read) out.message += " (" + s.log_note + ")";
    if (const char* cause = cpu_cause(r)) {
        out.message += fmt::format(": {} cannot load while the CPU offers no usable virtualization (see {})",
                                   want.empty() ? "a vendor module" : want, cause);
        remedy(out, fmt::format("Fix {} first; then `modprobe {}`.", cause, want.empty() ? "kvm_intel" : want), {}, "", "manual", false);
        return;
    }
    if (!m.module_support) {
        out.message += "; this kernel has no loadable-module support";
        remedy(out, "Boot a kernel built with CONFIG_KVM and CONFIG_KVM_INTEL/CONFIG_KVM_AMD (e.g. Debian's linux-image-amd64).", {}, "",
               "manual", true);
        return;
    }
    if (m.modules_disabled) {
        out.message += "; module loading is disabled (kernel.modules_disabled=1) until reboot";
        remedy(out, fmt::format("Load {} at boot instead: add it to /etc/modules-load.d/kvm.conf and reboot.", target),
               {fmt::format("echo {} > /etc/modules-load.d/kvm.conf", want.empty() ? "kvm_intel" : want)}, ids::fix::kvm_modules_load,
               "confirm", true);
        return;
    }
    if (!want.empty() && (installed(f, want) || !m.modules_dir_found)) {
        remedy(out,
               fmt::format("Load the module (it pulls in kvm); if modprobe says \"Operation not supported\" or dmesg says "
                           "\"disabled by bios\", enable virtualization in the firmware.",
                           want),
               {"modprobe " + want}, ids::fix::kvm_modules_load, "automatic", true);
        return;
    }
    if (!m.modules_dir_found) {
        remedy(out, fmt::format("No modules directory for kernel {}: install its modules package.", f.kernel.release),
               {package_install(f, {("linux-image-" + f.kernel.release).c_str(), ("kernel-modules-" + f.kernel.release).c_str(), "kernel-default", "linux"})}, "", "manual", true);
        return;
    }
    remedy(out, fmt::format("Kernel {} ships no {} module: install a kernel that has it.", f.kernel.release, target),
           {package_install(f, {"linux-image-amd64", "kernel-modules", "kernel-default", "linux"})}, "", "manual", true);
}

void device(const Facts& f, const Results& r, Finding& out) {
    const auto& d = f.device;
    const KvmState& s = r.derived().kvm;
    auto& ev = out.evidence;
    ev["path"] = d.path;
    ev["exists"] = d.stat.exists;
    if (d.stat.exists) {
        ev["type"] = d.stat.type;
        if (d.stat.type == "char" || d.stat.type == "block") ev["device"] = fmt::format("{}:{}", d.stat.major, d.stat.minor);
        ev["mode"] = mode_string(d.stat.mode);
        ev["owner"] = d.owner_name.empty() ? std::to_string(d.stat.uid) : d.owner_name;
        ev["group"] = d.group_name.empty() ? std::to_string(d.stat.gid) : d.group_name;
    }
    ev["device_registration"] = registration_text(s.registration);
    if (!d.dev_fstype.empty()) ev["dev_fstype"] = d.dev_fstype;
    const unsigned minor = d.misc_minor.value_or(kKvmMinor);
    const std::string mknod = fmt::format("mknod -m 0660 /dev/kvm c 10 {} && chgrp kvm /dev/kvm", minor);
    const bool registered = s.registration == KvmRegistration::Registered;
    const bool unregistered = s.registration == KvmRegistration::NotRegistered;
    // Why no device is registered: the module that did not bind, or none loaded.
    auto no_device_reason = [&]() -> std::string {
        if (s.flavour) return absence_clause(s, s.flavour->name);
        if (s.core) return "kvm is loaded but no vendor module (kvm_intel, kvm_amd) bound; see kvm.module";
        return "no KVM module is loaded; see kvm.module";
    };
    auto no_device_remedy = [&] {
        kernel_evidence(s, ev);
        if (s.flavour || s.standing_cause()) {
            unbound_remedy(f, s, r, out);
            return;
        }
        if (const char* cause = cpu_cause(r)) {
            remedy(out, fmt::format("It appears once a vendor module loads, which needs {} fixed first.{}", cause, kTcgMeanwhile), {}, "",
                   "manual", false);
            return;
        }
        const std::string want = expected_vendor_module(f);
        remedy(out, "Load the KVM module for this CPU (see kvm.module).", {"modprobe " + (want.empty() ? std::string("kvm_intel") : want)},
               ids::fix::kvm_modules_load, "automatic", true);
    };

    if (d.stat.exists && d.stat.type == "char" && d.stat.major == kKvmMajor && d.stat.minor == minor) {
        if (unregistered) {
            // A node made by hand (or left by an earlier kernel) over no driver.
            set(out, Status::Fail,
                fmt::format("/dev/kvm exists (10:{}) but no KVM device is registered (/proc/misc has no kvm), so opening it gives "
                            "ENXIO: {}",
                            minor, no_device_reason()));
            no_device_remedy();
            return;
        }
        set(out, Status::Pass, fmt::format("/dev/kvm is the KVM character device (10:{}, mode {}, {}:{})", minor, mode_string(d.stat.mode),
                                           ev["owner"].get<std::string>(), ev["group"].get<std::string>()));
        return;
    }
    if (d.stat.exists) {
        set(out, Status::Fail,
            d.stat.type == "char" ? fmt::format("/dev/kvm is character device {}:{}, not KVM's 10:{}", d.stat.major, d.stat.minor, minor)
                                  : fmt::format("/dev/kvm is a {}, not a character device", d.stat.type));
        if (unregistered) {
            out.message += "; and no KVM device is registered: " + no_device_reason();
            no_device_remedy();
            return;
        }
        remedy(out, "Replace it with the real device node.", {"rm /dev/kvm && " + mknod}, "", "confirm", true);
        return;
    }
    const bool container = r.derived().container.detected();
    if (container) {
        set(out, Status::Fail, "/dev/kvm does not exist in this container");
        remedy(out, "Pass the host's /dev/kvm into the container.", {"docker run --device /dev/kvm ..."}, "", "manual", false);
        return;
    }
    if (registered) {
        const bool devtmpfs = d.dev_fstype == "devtmpfs";
        set(out, Status::Fail,
            fmt::format("/dev/kvm does not exist although KVM registered its device (10:{} in /proc/misc){}", minor,
                        devtmpfs           ? ": the devtmpfs node was removed"
                        : d.dev_fstype.empty() ? ""
                                           : fmt::format(": /dev is a {}, not devtmpfs, so only udev or an admin creates nodes",
                                                         d.dev_fstype)));
        remedy(out, "Create the node (udev's rule, or the kvm.device-permissions fix, keeps its group at boot).", {mknod}, "",
               "confirm", true);
        return;
    }
    if (unregistered || !s.flavour) {
        set(out, Status::Fail, "/dev/kvm does not exist: no KVM device is registered, because " + no_device_reason());
        no_device_remedy();
        return;
    }
    // /proc/misc not read (a recording made before kvmready read it).
    set(out, Status::Fail,
        "/dev/kvm does not exist although KVM modules are loaded; whether KVM registered its device is unknown (/proc/misc not read)");
    remedy(out,
           "If /proc/misc lists kvm, nothing created the node: create it. If it does not, no module bound: the kernel log says "
           "why (see kvm.module).",
           {"grep -w kvm /proc/misc", mknod + "   # only if /proc/misc lists kvm"}, "", "manual", true);
}

void access(const Facts& f, const Results&, Finding& out) {
    const auto& a = f.access;
    const auto& d = f.device;
    auto& ev = out.evidence;
    if (!a.user) {
        set(out, Status::Unknown, "cannot tell whose access to judge: " + a.lookup_error);
        remedy(out, "Name the user explicitly.", {"kvmready check --user <name> kvm.access"}, "", "manual", false);
        return;
    }
    const host::User& u = *a.user;
    ev["user"] = u.name;
    ev["uid"] = u.uid;
    std::vector<uint32_t> db_gids;
    for (const auto& g : u.groups) db_gids.push_back(g.gid);
    std::vector<std::string> names;
    for (const auto& g : u.groups) names.push_back(g.name.empty() ? std::to_string(g.gid) : g.name);
    ev["groups"] = names;
    const std::vector<uint32_t>& gids = a.process_groups ? *a.process_groups : db_gids;
    if (a.process_groups) ev["session_gids"] = *a.process_groups;
    ev["device_mode"] = mode_string(d.stat.mode);
    ev["device_group"] = d.group_name.empty() ? std::to_string(d.stat.gid) : d.group_name;
    if (d.acl) {
        nlohmann::ordered_json acl = nlohmann::ordered_json::array();
        for (const auto& e : *d.acl) acl.push_back(fmt::format("{}:{}:{}", e.tag, e.id < 0 ? "" : std::to_string(e.id), e.perms));
        ev["acl"] = acl;
    }
    const AccessDecision by_perm = decide_access(d, u, gids);
    const AccessDecision by_db = decide_access(d, u, db_gids);
    ev["permission_basis"] = by_perm.basis;
    if (a.open_errno) ev["open_rw"] = *a.open_errno == 0 ? "ok" : errno_text(*a.open_errno);

    const std::string grp = d.group_name.empty() ? "kvm" : d.group_name;
    // A real open by this very user is ground truth; permissions explain it.
    const bool allowed = a.open_errno ? *a.open_errno == 0 : by_perm.allowed;
    if (allowed) {
        std::string msg = fmt::format("{} can open /dev/kvm read-write ({})", u.name,
                                      a.open_errno ? "opened it; " + by_perm.basis : by_perm.basis);
        set(out, Status::Pass, msg);
        return;
    }
    if (a.open_errno && by_perm.allowed) {
        set(out, Status::Fail,
            fmt::format("{} may open /dev/kvm by its permissions ({}), yet open() failed: {}; something beyond file permissions "
                        "denies it (device cgroup, SELinux/AppArmor, a read-only /dev)",
                        u.name, by_perm.basis, errno_text(*a.open_errno)));
        remedy(out, "Check the container's device rules and the security module's audit log.", {"dmesg | grep -i -e avc -e apparmor"},
               "", "manual", true);
        return;
    }
    if (a.process_groups && by_db.allowed) {
        ev["permission_basis_user_database"] = by_db.basis;
        set(out, Status::Fail,
            fmt::format("{} is in group {} in the user database, but this login session started before that and does not hold it",
                        u.name, grp));
        remedy(out, "Start a new login session (log out and in), or use the group in this shell right away.", {"newgrp " + grp}, "",
               "manual", false);
        return;
    }
    set(out, Status::Fail, fmt::format("{} cannot open /dev/kvm read-write ({}:{} mode {}; {} apply)", u.name,
                                       d.owner_name.empty() ? std::to_string(d.stat.uid) : d.owner_name, grp, mode_string(d.stat.mode),
                                       by_perm.basis));
    const bool group_rw = ((d.stat.mode >> 3) & 6) == 6 && d.stat.gid != 0;
    if (group_rw) {
        remedy(out, fmt::format("Add {} to group {} (takes effect at the next login).", u.name, grp),
               {fmt::format("usermod -aG {} {}", grp, u.name)}, ids::fix::user_groups, "confirm", true);
    } else {
        remedy(out,
               "Give /dev/kvm to group kvm with mode 0660 now and at every boot (udev rule), then add the user to kvm.",
               {"groupadd -f -r kvm", "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm",
                "echo 'KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"' > /etc/udev/rules.d/65-kvm.rules",
                fmt::format("usermod -aG kvm {}", u.name)},
               ids::fix::kvm_device_permissions, "confirm", true);
    }
}

void api(const Facts& f, const Results& r, Finding& out) {
    const auto& k = f.kvm;
    auto& ev = out.evidence;
    // The test runs as the invoking user; when that user has no access the
    // cause is already reported. For --user OTHER it still shows whether KVM works.
    if (f.access.is_current && status(r, ids::kvm_access) == Status::Fail) {
        set(out, Status::Skip, "needs kvm.access (failed)");
        return;
    }
    if (!k.attempted) {
        set(out, Status::Unknown, "functional test not run: " + k.not_attempted_reason);
        remedy(out, "Run kvmready on the host itself to test /dev/kvm for real.", {"kvmready check kvm.api"}, "", "manual", false);
        return;
    }
    ev["api_version"] = k.api_version;
    ev["duration_ms"] = std::round(k.duration_ms * 100) / 100;
    if (!k.capabilities.empty()) ev["capabilities"] = k.capabilities;
    if (const auto* m = flavour_module(f)) ev["flavour"] = m->name;
    if (k.open_errno == ENXIO) {
        set(out, Status::Fail, "cannot open /dev/kvm: " + errno_text(k.open_errno) + ": no KVM module registered the device behind the node");
        remedy(out, "See kvm.module and kvm.device for why no module bound; a node made by hand cannot help.", {}, "", "manual", false);
        return;
    }
    if (k.open_errno != 0) {
        set(out, Status::Fail, "cannot open /dev/kvm: " + errno_text(k.open_errno));
        remedy(out, "See kvm.access for who may open it.", {}, "", "manual", false);
        return;
    }
    if (k.api_version != 12) {
        set(out, Status::Fail, fmt::format("KVM_GET_API_VERSION returned {}, expected 12", k.api_version));
        remedy(out, "/dev/kvm does not behave like KVM; check what provides it (kvm.device).", {}, "", "manual", false);
        return;
    }
    if (!k.vm_created) {
        ev["create_vm_error"] = errno_text(k.create_vm_errno);
        if (k.create_vm_errno == EBUSY) {
            set(out, Status::Fail, "KVM_CREATE_VM failed with EBUSY: another hypervisor (VirtualBox, VMware) holds VT-x/AMD-V");
            remedy(out, "Stop the other hypervisor's VMs and unload its kernel modules.", {"lsmod | grep -e vbox -e vmmon"}, "", "manual", true);
        } else {
            set(out, Status::Fail, "KVM_CREATE_VM failed: " + errno_text(k.create_vm_errno));
            remedy(out, "The kernel log says why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        }
        return;
    }
    if (!k.vcpu_created) {
        set(out, Status::Fail, "KVM_CREATE_VCPU failed: " + errno_text(k.create_vcpu_errno));
        remedy(out, "The kernel log says why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        return;
    }
    if (!k.ran || k.guest_output != "KVM") {
        set(out, Status::Fail, k.ran ? fmt::format("guest ran but wrote \"{}\" instead of \"KVM\"", k.guest_output)
                                     : "guest code did not run to HLT: " + k.run_error);
        remedy(out, "KVM accepts VMs but cannot run guest code; the kernel log says why.", {"dmesg | grep -i kvm | tail"}, "", "manual", true);
        return;
    }
    const auto* m = flavour_module(f);
    set(out, Status::Pass, fmt::format("KVM works: API 12, created a VM and a vCPU and ran guest code to HLT in {:.1f} ms{}", k.duration_ms,
                                       m ? " via " + m->name : ""));
}

void nested(const Facts& f, const Results&, Finding& out) {
    const ModuleInfo* m = flavour_module(f);
    if (!m) {
        set(out, Status::Skip, "no KVM vendor module is loaded");
        return;
    }
    auto& ev = out.evidence;
    ev["module"] = m->name;
    auto it = m->parameters.find("nested");
    if (it == m->parameters.end()) {
        if (m->name == "kvm_pvm") {
            set(out, Status::Unknown, "kvm_pvm has no 'nested' parameter: its guests see no VT-x/AMD-V and can only nest through PVM again");
            remedy(out, "Guests that must run their own VMs need a host with VT-x/AMD-V and kvm_intel/kvm_amd nested=1.", {}, "", "manual", false);
        } else {
            set(out, Status::Unknown, m->name + " exposes no 'nested' parameter");
            remedy(out, "Consult the module's documentation for nested support.", {"modinfo " + m->name}, "", "manual", false);
        }
        return;
    }
    ev["nested"] = it->second;
    const bool on = it->second == "Y" || it->second == "1";
    if (on) {
        set(out, Status::Pass, fmt::format("nested virtualization is enabled ({} nested={})", m->name, it->second));
        return;
    }
    set(out, Status::Warn, fmt::format("nested virtualization is disabled ({} nested={}); guests cannot run their own VMs", m->name, it->second));
    remedy(out, "Enable it persistently; the module must be reloaded while no VM runs (or reboot).",
           {fmt::format("echo 'options {} nested=1' > /etc/modprobe.d/kvm-nested.conf", m->name),
            fmt::format("modprobe -r {0} && modprobe {0}", m->name)},
           ids::fix::kvm_nested, "confirm", true);
}

}  // namespace

void register_kvm(std::vector<CheckSpec>& r) {
    r.push_back({ids::kvm_module, "KVM kernel modules", Level::Required, {},
                 "/sys/module/kvm* (present for loaded and built-in modules; initstate only for loadable ones), /proc/misc "
                 "(\"232 kvm\" once a vendor or flavour module bound: a built-in module stays in /sys/module even when it "
                 "declined), /proc/modules (module support), /proc/sys/kernel/modules_disabled, /lib/modules/RELEASE/modules.dep, "
                 "and the kernel log's KVM lines (\"disabled by bios\", \"no hardware support\", \"not binding\") when KVM is "
                 "absent.",
                 "KVM needs the core kvm module plus a vendor module: kvm_intel (VT-x), kvm_amd (AMD-V) or another flavour "
                 "such as kvm_pvm (software PVM).",
                 "modprobe kvm_intel or kvm_amd; persist in /etc/modules-load.d/.", module});
    r.push_back({ids::kvm_device, "/dev/kvm device node", Level::Required, {},
                 "stat(/dev/kvm): type, device numbers, mode, owner and group; /proc/misc (whether KVM registered its device, "
                 "and its minor); the filesystem type of /dev; the kernel log when no device is registered.",
                 "Every VMM (QEMU, Firecracker, cloud-hypervisor) opens /dev/kvm, the character device 10:232. The node only "
                 "works when a KVM module registered the device: a node made by hand without one gives ENXIO.",
                 "If /proc/misc lists kvm and the node is missing, create it (mknod /dev/kvm c 10 232); if it does not, no "
                 "module bound, and the kernel log says why (firmware, no VT-x/AMD-V, a PVM guest).", device});
    r.push_back({ids::kvm_access, "User may open /dev/kvm read-write", Level::Required, {ids::kvm_device},
                 "Mode, owner, group and POSIX ACL of /dev/kvm; the user's groups from the user database and, for the invoking "
                 "user, the groups of the running session; for the invoking user also a real open(O_RDWR).",
                 "QEMU runs as an ordinary user (libvirt-qemu on Debian) and must open /dev/kvm read-write; without access it "
                 "silently falls back to slow emulation or fails.",
                 "Group kvm with mode 0660 on /dev/kvm (udev rule) and the user in group kvm.", access});
    r.push_back({ids::kvm_api, "KVM works (ioctl functional test)", Level::Required, {ids::kvm_device},
                 "ioctls on /dev/kvm: KVM_GET_API_VERSION (12), KVM_CHECK_EXTENSION for capabilities, KVM_CREATE_VM, "
                 "KVM_CREATE_VCPU, and KVM_RUN of a few bytes of real-mode code that writes \"KVM\" to an I/O port and halts.",
                 "This is the ground truth: if a VM can be created and guest code runs, KVM works, whatever CPU flags say.",
                 "Follow the failing step's hint (access, EBUSY from another hypervisor, kernel log).", api});
    r.back().ground_truth = true;  // the runner's verdict rests on it
    r.push_back({ids::kvm_nested, "Nested virtualization", Level::Optional, {ids::kvm_module},
                 "/sys/module/kvm_intel/parameters/nested or /sys/module/kvm_amd/parameters/nested.",
                 "Needed only to run hypervisors inside guests (CI runners, labs).",
                 "options kvm_intel nested=1 (or kvm_amd) in /etc/modprobe.d/, then reload the module.", nested});
}

}  // namespace kvmready::checks
