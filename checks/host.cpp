// host.*: what kind of machine this is (bare metal, VM, container), because
// that decides where a missing capability must be fixed.
#include <cerrno>

#include <fmt/format.h>

#include "checks/checks.hpp"
#include "checks/common.hpp"
#include "core/derived.hpp"

namespace kvmready::checks {

namespace {

void hypervisor(const Facts& f, const Results& r, Finding& out) {
    const auto& h = f.hypervisor;
    auto& ev = out.evidence;
    std::optional<cpuid::Decoded> d;
    if (f.cpu.available) d = cpuid::decode(f.cpu.dump);
    const bool live_cpu = cpuid_is_this_host(f);
    if (d && live_cpu) {
        ev["cpuid_hypervisor_bit"] = d->hypervisor;
        ev["cpuid_signature"] = d->hypervisor_vendor ? nlohmann::ordered_json(*d->hypervisor_vendor) : nlohmann::ordered_json();
    }
    if (!h.dmi.empty()) ev["dmi"] = h.dmi;
    if (!h.sys_hypervisor_type.empty()) ev["sys_hypervisor_type"] = h.sys_hypervisor_type;
    const Derived& dv = r.derived();
    const OuterHypervisor& hv = dv.outer;
    if (!hv.kernel_detected.empty()) ev["kernel_detected"] = hv.kernel_detected;
    else ev["kernel_detected"] = f.kernel_log.read ? "nothing (no \"Hypervisor detected\" line in the kernel log)"
                                                   : "not read (" + f.kernel_log.reason + ")";
    if (!hv.disagreements.empty()) ev["disagreements"] = hv.disagreements;

    // Container: judged in core (container_of), shown here.
    const std::string& container = dv.container.runtime;
    const std::string& basis = dv.container.basis;
    if (!basis.empty()) ev["container_basis"] = basis;
    ev["container"] = container.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(container);
    if (dv.container.dockerenv_only)
        ev["note"] = "/.dockerenv exists but nothing else indicates a container; not treated as one";
    if (h.wsl) ev["wsl"] = true;

    std::string what;
    if (d && live_cpu && d->hypervisor) {
        // Sources that disagree are shown, not resolved silently.
        std::string basis = hv.basis;
        for (const auto& dis : hv.disagreements) basis += "; " + dis;
        what = !hv.key.empty()                 ? "a virtual machine under " + hv.name + " (" + basis + ")"
               : !hv.cpuid_signature.empty() ? "a virtual machine under an unknown hypervisor (CPUID signature \"" + hv.cpuid_signature + "\")"
                                             : "a virtual machine (CPUID hypervisor bit)";
    } else if (!hv.kernel_detected.empty() && !hv.key.empty()) {
        what = "a virtual machine under " + hv.name + " (" + hv.basis + ")";
    } else if (!h.sys_hypervisor_type.empty()) {
        what = "a " + h.sys_hypervisor_type + " domain (/sys/hypervisor/type)";
    } else if (h.dmi.count("sys_vendor") && (h.dmi.at("sys_vendor") == "QEMU" || h.dmi.at("product_name") == "KVM" ||
                                               h.dmi.at("sys_vendor") == "innotek GmbH" ||
                                               h.dmi.at("sys_vendor") == "VMware, Inc.")) {
        what = "a virtual machine (DMI: " + h.dmi.at("sys_vendor") + ")";
    } else if (d && live_cpu) {
        what = "bare metal (no hypervisor bit in CPUID)";
    } else {
        what = "unknown (no CPUID of this host)";
    }
    if (h.wsl) what += ", WSL2";
    ev["machine"] = what;

    if (!container.empty()) {
        set(out, Status::Warn, fmt::format("inside a {} container ({}) on {}", container, basis, what));
        remedy(out,
               "The host may support KVM, but this container can only use it if /dev/kvm is passed in; run kvmready on "
               "the host to judge the host itself.",
               {"docker run --device /dev/kvm ...", "podman run --device /dev/kvm ..."}, "", "manual", false);
        return;
    }
    const bool guest = d && live_cpu && d->hypervisor;
    // Without the right to open /dev/kvm this user never ran KVM: that says
    // nothing about nested virtualization, so it is not judged.
    const int denied = f.kvm.attempted ? f.kvm.open_errno : 0;
    if (guest && !d->vmx && !d->svm && !f.kvm.ran && (denied == EACCES || denied == EPERM)) {
        set(out, Status::Unknown,
            fmt::format("running as {}; whether KVM works inside it cannot be judged: permission denied opening /dev/kvm ({}) for "
                        "this user",
                        what, denied == EACCES ? "EACCES" : "EPERM"));
        return;
    }
    if (guest && !d->vmx && !d->svm && !f.kvm.ran) {
        set(out, Status::Warn, "running as " + what + " without nested virtualization");
        OuterHypervisor target = hv;
        if (dv.kvm.absence == KvmAbsence::PvmGuest) target.key = "pvm";
        const auto adv = nested_advice(target, f);
        remedy(out, adv.text, adv.commands, "", "manual", false);
        return;
    }
    set(out, Status::Pass, "running as " + what);
}

}  // namespace

void register_host(std::vector<CheckSpec>& r) {
    r.push_back({ids::host_hypervisor, "Bare metal, virtual machine or container", Level::Optional, {},
                 "CPUID hypervisor bit and signature (leaf 0x40000000), the kernel's own detection (\"Hypervisor detected: X\" "
                 "in the kernel log, read when KVM is absent or failing), /sys/class/dmi/id/*, /sys/hypervisor/type; sources "
                 "that disagree are shown. For containers: container= in /proc/1/environ, /run/.containerenv, /proc/1/cgroup, the root filesystem type "
                 "(/.dockerenv only as supporting evidence).",
                 "Inside a VM, KVM needs nested virtualization from the outer hypervisor; inside a container, /dev/kvm must "
                 "be passed in. Knowing which tells where to fix a failure.",
                 "Enable nested virtualization on the outer host, or pass --device /dev/kvm to the container.", hypervisor});
}

}  // namespace kvmready::checks
