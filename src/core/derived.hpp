// Derived facts: conclusions several checks draw from the same Facts (which
// KVM module bound and why not, the hypervisor this machine runs under, the
// container it runs in). They are computed here, in core, from Facts alone,
// so that no check re-derives them and no check reads another check's
// evidence or message to learn them.
//
// derive() is a pure function of Facts (KvmState points into the Facts it
// was computed from, so a Derived lives no longer than its Facts). The runner
// calls it once per run, before the first check (Results(facts)); checks read
// it through Results::derived().
#pragma once

#include <string>

#include "core/facts.hpp"
#include "core/kvm_state.hpp"

namespace kvmready {

// The container this process runs in, by several independent signals;
// /.dockerenv alone proves nothing (images carry it into VMs and chroots).
struct Container {
    std::string runtime;  // "docker", "podman", "LXC", ...; "" when not in a container
    std::string basis;    // which signal said so
    // /.dockerenv exists but nothing else indicates a container.
    bool dockerenv_only = false;
    [[nodiscard]] bool detected() const { return !runtime.empty(); }
};
Container container_of(const HypervisorFacts& h);

struct Derived {
    KvmState kvm;            // kvm_state(f)
    OuterHypervisor outer;   // outer_hypervisor(f)
    Container container;     // container_of(f.hypervisor)
};
Derived derive(const Facts& f);

}  // namespace kvmready
