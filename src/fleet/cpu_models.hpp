// x86 CPU features and named CPU models as libvirt defines them (its
// cpu_map, embedded at build time): which CPUID/MSR bit is which feature,
// which features each QEMU/libvirt model requires, the x86-64
// microarchitecture levels, and the named model closest to a feature set.
// Pure code: the CPUID comes from a dump, a recording or KVM's answer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cpuid/cpuid.hpp"

namespace kvmready::fleet {

using FeatureSet = std::set<std::string>;

struct FeatureDef {
    std::string name;                      // libvirt's name ("pclmuldq", "sse4.1")
    std::string qemu_name;                 // QEMU's (-cpu, Proxmox flags): its alias, else name
    bool has_cpuid = false;
    uint32_t leaf = 0, subleaf = 0;
    uint32_t regs[4] = {0, 0, 0, 0};       // eax, ebx, ecx, edx masks
    bool has_msr = false;
    uint32_t msr = 0;
    uint64_t msr_mask = 0;
};

struct ModelDef {
    std::string name;
    std::string vendor;                    // "Intel", "AMD", "" for generic models
    bool decode_guest = true;              // <decode guest='on'>: libvirt may name it for a guest
    std::vector<std::pair<unsigned, unsigned>> signatures;  // (family, model)
    FeatureSet features;
};

struct CpuMap {
    std::string error;                     // why the map is empty or partial
    std::vector<FeatureDef> features;
    std::vector<ModelDef> models;          // in index.xml order (libvirt decodes in that order)
    std::map<std::string, std::string> vendors;  // "GenuineIntel" -> "Intel"
    [[nodiscard]] const FeatureDef* feature(const std::string& name) const;
    [[nodiscard]] const ModelDef* model(const std::string& name) const;
};

// Parsed once, on first use.
const CpuMap& cpu_map();

// The features whose CPUID bits (and, for MSR features, MSR bits) are set.
// `leaves` as cpuid::Dump or KVM_GET_SUPPORTED_CPUID give them.
FeatureSet features_of(const std::vector<cpuid::Leaf>& leaves, const std::map<uint32_t, uint64_t>& msrs);

// libvirt's vendor name for a CPUID vendor string ("" when unknown).
std::string vendor_name(const std::string& cpuid_vendor);

// x86-64 microarchitecture levels (psABI): 1..4, 0 when not even the
// baseline; missing_for_level lists what keeps a set from `level`.
int x86_64_level(const FeatureSet& f);
std::vector<std::string> missing_for_level(const FeatureSet& f, int level);
std::string level_name(int level);        // "x86-64-v3", "" for 0

// A named model plus the features to add and remove to get exactly `f`, as
// libvirt's x86Decode picks it: among the models of this vendor (or none)
// that may be used for guests, the one needing the fewest changes; a model
// whose signature matches wins over ones whose does not; ties go to the
// earlier model in cpu_map order.
struct ModelFit {
    std::string model;
    std::vector<std::string> require;      // in f, not in the model
    std::vector<std::string> disable;      // in the model, not in f
};
std::optional<ModelFit> closest_model(const FeatureSet& f, const std::string& vendor,
                                      const std::vector<std::pair<unsigned, unsigned>>& signatures = {});
// The newest named model that needs nothing `f` lacks (no disable list):
// the one with the most features, ties to the later model in map order.
std::optional<ModelFit> runnable_model(const FeatureSet& f, const std::string& vendor);

// The QEMU spelling of a libvirt feature name (the name itself when unknown).
std::string qemu_feature_name(const std::string& name);

}  // namespace kvmready::fleet
