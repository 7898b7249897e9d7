// One host's CPU as migration sees it: the CPU's own features (CPUID), what
// KVM gives guests (KVM_GET_SUPPORTED_CPUID and the feature MSRs), and
// libvirt's host-model, each with its x86-64 level and closest named model.
// Built from Facts for the report's `cpu` section, and read back from that
// section by `kvmready compare` and the fleet baseline.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/facts.hpp"
#include "fleet/cpu_models.hpp"

namespace kvmready::fleet {

struct HostCpu {
    std::string name;                      // report path or hostname, for messages
    std::string vendor;                    // libvirt's vendor name: "Intel", "AMD", "Hygon", "" unknown
    std::string vendor_id;                 // CPUID's 12 bytes
    std::string brand;
    unsigned family = 0, model = 0, stepping = 0;
    std::string source;                    // facts' cpu.source: live, dump:FILE, recorded
    bool cpu_known = false;
    FeatureSet cpu_features;               // the CPU's own
    std::optional<FeatureSet> guest_features;  // what KVM gives guests
    std::string guest_reason;              // why guest_features is absent
    std::optional<FeatureSet> host_model;  // libvirt's host-model, expanded
    std::string host_model_name;
    std::string host_model_reason;
    std::string kernel, qemu_version, libvirt_version;

    // What a guest started here can be given: KVM's answer, else libvirt's
    // host-model, else the CPU's own features. basis() names which.
    [[nodiscard]] const FeatureSet& usable() const;
    [[nodiscard]] std::string basis() const;  // "kvm", "host-model", "cpu"
};

HostCpu host_cpu_from_facts(const Facts& f);

// The report's `cpu` section.
nlohmann::ordered_json host_cpu_json(const HostCpu& h);

// Reads a report's `cpu` section back; nullopt (and why) when the report has
// none (made before kvmready had it) or it is not well formed.
std::optional<HostCpu> host_cpu_from_report(const nlohmann::json& report, const std::string& name, std::string& error);

}  // namespace kvmready::fleet
