// The CPU every host of a set can give its guests: the intersection of what
// each gives (KVM's answer, else libvirt's host-model, else the CPU's own
// features, marked), its x86-64 level and the named models that fit it.
// `kvmready compare --baseline` prints it; the lead wires baseline() into
// `kvmready fleet --baseline` (print_baseline_* are the renderers).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/cpu_models.hpp"
#include "fleet/host_cpu.hpp"
#include "fleet/load.hpp"

namespace kvmready::fleet {

struct BaselineHost {
    std::string name;
    std::string basis;                     // "kvm", "host-model", "cpu" (HostCpu::basis)
    std::string level;                     // its own x86-64 level
    size_t features = 0;
    std::vector<std::string> lost;         // its features the baseline does not keep
};

struct Baseline {
    std::vector<BaselineHost> hosts;
    std::string vendor;                    // common vendor, "" when they differ
    bool mixed_vendors = false;
    FeatureSet features;
    int level = 0;
    std::optional<ModelFit> model;         // closest named model + require/disable (what the dialects print)
    std::optional<ModelFit> runnable;      // newest named model needing no disable
    [[nodiscard]] bool usable() const { return !hosts.empty() && !mixed_vendors && model.has_value(); }
};

Baseline baseline(const std::vector<HostCpu>& hosts);

// Reports in, baseline out: what `fleet --baseline` runs. Unreadable reports
// and reports without a cpu section are listed in `problems` (path: why).
struct BaselineRun {
    std::vector<HostCpu> hosts;
    std::vector<std::string> problems;
    Baseline result;
};
BaselineRun baseline_of_reports(const std::vector<LoadedReport>& reports);

std::string baseline_text(const BaselineRun& run);
nlohmann::ordered_json baseline_json(const BaselineRun& run);

}  // namespace kvmready::fleet
