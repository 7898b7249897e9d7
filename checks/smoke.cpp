// smoke.boot: the proof by example. Every other check reads configuration;
// this one is the result of booting a throwaway guest through libvirt
// (`kvmready check --full` runs `kvmready smoke`'s default ladder and keeps
// its summary in Facts::smoke). Without --full it is skipped: booting a VM is
// not something a plain `check` does behind the user's back.
#include <fmt/format.h>

#include "checks/common.hpp"
#include "core/check.hpp"

namespace kvmready::checks {

namespace {

void boot(const Facts& f, const Results&, Finding& out) {
    const auto& s = f.smoke;
    auto& ev = out.evidence;
    if (!s.ran) {
        if (!s.not_run_reason.empty()) ev["not_run_reason"] = s.not_run_reason;
        set(out, Status::Skip,
            s.not_run_reason.empty() ? "not run: `kvmready check --full` boots a throwaway guest through libvirt to prove it"
                                     : "the smoke test could not run: " + s.not_run_reason);
        return;
    }
    ev["uri"] = s.uri;
    ev["accel_requested"] = s.accel_requested;
    ev["accel_used"] = s.accel_used;
    ev["steps"] = s.steps;
    ev["total_ms"] = s.total_ms;
    if (!s.failed_step.empty()) {
        ev["failed_step"] = s.failed_step;
        ev["failure"] = s.failure;
    }
    if (!s.diagnosis.empty()) ev["diagnosis"] = s.diagnosis;
    if (s.passed && s.kvm_flavour_pvm && s.accel_used == "kvm") {
        // Proved for kvmready's own guest, not for the kernels people run.
        set(out, Status::Warn, s.verdict + " " + s.diagnosis);
        remedy(out, std::string(kPvmImplications) + ".", {"kvmready smoke --guest linux", "virt-install --virt-type qemu ..."}, "", "manual",
               false);
        return;
    }
    if (s.passed) {
        set(out, Status::Pass, s.verdict);
        return;
    }
    if (s.exit_code == 69 || s.exit_code == 77) {
        // Not a verdict on the host: the run lacked a daemon, a pool, a
        // network or the permission; the libvirt/storage checks say which.
        set(out, Status::Unknown, fmt::format("the smoke test could not run: {}", s.failure_message.empty() ? s.verdict : s.failure_message));
        if (s.exit_code == 77)
            remedy(out, "Run the smoke test as root or as a member of group libvirt.", {"sudo kvmready smoke"}, "", "manual", true);
        else
            remedy(out, "Fix what the libvirt.* and storage.* checks report, then run the smoke test again.", {"kvmready smoke"}, "",
                   "manual", false);
        return;
    }
    set(out, Status::Fail, s.diagnosis.empty() ? s.verdict : s.verdict + " " + s.diagnosis);
    if (s.kvm_flavour_pvm) {
        remedy(out, std::string(kPvmImplications) + "; run guests as domain type qemu (TCG) until the host has kvm_intel or kvm_amd.",
               {"virt-install --virt-type qemu ..."}, "", "manual", false);
        return;
    }
    remedy(out, "Re-run the smoke test keeping the domain, volume and serial log, and read them.", {"kvmready smoke --keep"}, "",
           "manual", false);
}

}  // namespace

void register_smoke(std::vector<CheckSpec>& r) {
    r.push_back({ids::smoke_boot, "A throwaway guest boots through libvirt", Level::Recommended, {},
                 "Only with `kvmready check --full`: the result of `kvmready smoke` (builtin guest, --accel auto) against the "
                 "--connect URI, --network/--bridge and --pool being judged: each ladder step (KVM ioctl guest, QEMU directly, "
                 "libvirt) and each stage the guest reported on its serial console (boot, disk nonce read back, NIC).",
                 "Configuration checks can all pass on a host that still cannot run a VM (a KVM flavour that hangs QEMU, a pool "
                 "QEMU cannot open, a network that never starts); booting one is the proof.",
                 "Follow the diagnosis: it names the layer that failed (KVM acceleration, QEMU, libvirt, storage, network).", boot});
}

}  // namespace kvmready::checks
