#include "fleet/baseline.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "fleet/cpu_models_dialects.hpp"

namespace kvmready::fleet {

namespace {

std::string basis_text(const std::string& basis) {
    if (basis == "kvm") return "what KVM gives guests";
    if (basis == "host-model") return "libvirt's host-model";
    return "the CPU's own features only (no KVM data in the report)";
}

nlohmann::ordered_json fit_json(const std::optional<ModelFit>& m) {
    if (!m) return nullptr;
    return {{"name", m->model}, {"require", m->require}, {"disable", m->disable}};
}

}  // namespace

Baseline baseline(const std::vector<HostCpu>& hosts) {
    Baseline b;
    if (hosts.empty()) return b;
    b.vendor = hosts.front().vendor;
    b.features = hosts.front().usable();
    for (const auto& h : hosts) {
        if (h.vendor != b.vendor) b.mixed_vendors = true;
        FeatureSet keep;
        std::set_intersection(b.features.begin(), b.features.end(), h.usable().begin(), h.usable().end(), std::inserter(keep, keep.end()));
        b.features = std::move(keep);
    }
    for (const auto& h : hosts) {
        BaselineHost bh{h.name, h.basis(), level_name(x86_64_level(h.usable())), h.usable().size(), {}};
        std::set_difference(h.usable().begin(), h.usable().end(), b.features.begin(), b.features.end(), std::back_inserter(bh.lost));
        b.hosts.push_back(std::move(bh));
    }
    if (b.mixed_vendors) b.vendor.clear();
    b.level = x86_64_level(b.features);
    if (!b.mixed_vendors && !b.vendor.empty()) {
        // libvirt keeps a signature only when every host shares it.
        std::vector<std::pair<unsigned, unsigned>> sig = {{hosts.front().family, hosts.front().model}};
        for (const auto& h : hosts)
            if (h.family != hosts.front().family || h.model != hosts.front().model) sig.clear();
        b.model = closest_model(b.features, b.vendor, sig);
        b.runnable = runnable_model(b.features, b.vendor);
    }
    return b;
}

BaselineRun baseline_of_reports(const std::vector<LoadedReport>& reports) {
    BaselineRun run;
    for (const auto& r : reports) {
        if (!r.report) {
            run.problems.push_back(r.path + ": " + r.error);
            continue;
        }
        std::string why;
        if (auto h = host_cpu_from_report(*r.report, r.path, why)) run.hosts.push_back(std::move(*h));
        else run.problems.push_back(r.path + ": " + why);
    }
    run.result = baseline(run.hosts);
    return run;
}

std::string baseline_text(const BaselineRun& run) {
    const auto& b = run.result;
    std::string out = fmt::format("CPU baseline of {} host{}\n", b.hosts.size(), b.hosts.size() == 1 ? "" : "s");
    for (const auto& h : b.hosts)
        out += fmt::format("  {}: {} features, {}, from {}{}\n", h.name, h.features, h.level.empty() ? "below x86-64-v1" : h.level,
                           basis_text(h.basis), h.lost.empty() ? "" : fmt::format("; gives up {}", h.lost.size()));
    for (const auto& p : run.problems) out += "  unreadable: " + p + "\n";
    if (b.hosts.empty()) return out + "No host to compare.\n";
    if (b.mixed_vendors) return out + "The hosts' CPUs are of different vendors: no guest can live-migrate between them.\n";
    out += fmt::format("Common features: {}, {}\n", b.features.size(), b.level ? level_name(b.level) : "below x86-64-v1");
    if (b.runnable) out += fmt::format("Newest named model all can run as it is: {}\n", b.runnable->model);
    if (!b.model) return out + "No named CPU model of libvirt's cpu_map fits.\n";
    out += fmt::format("Closest named model: {} (require {}, disable {})\n\n", b.model->model, b.model->require.size(), b.model->disable.size());
    out += "libvirt domain XML:\n" + libvirt_cpu_xml(*b.model, b.vendor) + "\n";
    out += "OpenStack nova (nova.conf):\n" + nova_conf(*b.model) + "\n";
    out += "Proxmox VE:\n" + proxmox_cpu(*b.model) + "\n";
    out += "KubeVirt (VirtualMachine):\n" + kubevirt_cpu_yaml(*b.model);
    return out;
}

nlohmann::ordered_json baseline_json(const BaselineRun& run) {
    const auto& b = run.result;
    nlohmann::ordered_json hosts = nlohmann::ordered_json::array();
    for (const auto& h : b.hosts)
        hosts.push_back({{"name", h.name},
                         {"basis", h.basis},
                         {"cpu_only", h.basis == "cpu"},
                         {"x86_64_level", h.level.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(h.level)},
                         {"features", h.features},
                         {"not_in_baseline", h.lost}});
    nlohmann::ordered_json dialects = nullptr;
    if (b.model && !b.mixed_vendors)
        dialects = {{"libvirt", libvirt_cpu_xml(*b.model, b.vendor)},
                    {"nova", nova_conf(*b.model)},
                    {"proxmox", proxmox_cpu(*b.model)},
                    {"kubevirt", kubevirt_cpu_yaml(*b.model)}};
    return {{"hosts", hosts},
            {"unreadable", run.problems},
            {"vendor", b.vendor.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(b.vendor)},
            {"mixed_vendors", b.mixed_vendors},
            {"x86_64_level", b.level ? nlohmann::ordered_json(level_name(b.level)) : nlohmann::ordered_json()},
            {"model", fit_json(b.model)},
            {"runnable_model", b.runnable ? nlohmann::ordered_json(b.runnable->model) : nlohmann::ordered_json()},
            {"features", b.features},
            {"dialects", dialects}};
}

}  // namespace kvmready::fleet
