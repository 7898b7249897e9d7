#include "fleet/host_cpu.hpp"

#include <cstring>

#include <fmt/format.h>

namespace kvmready::fleet {

namespace {

std::string guest_unavailable(const Facts& f) {
    const auto& k = f.kvm;
    if (f.cpu.source.rfind("dump:", 0) == 0)
        return "the CPU comes from a CPUID dump: what KVM gives guests is known only on that host";
    if (!k.attempted) return k.not_attempted_reason.empty() ? "/dev/kvm was not probed" : "/dev/kvm was not probed: " + k.not_attempted_reason;
    if (k.open_errno) return fmt::format("/dev/kvm did not open: {}", std::strerror(k.open_errno));
    if (!k.vmm_probed) return "KVM_GET_SUPPORTED_CPUID was not asked (a recording made before kvmready did, or KVM spoke another API)";
    if (k.supported_cpuid_errno) return fmt::format("KVM_GET_SUPPORTED_CPUID failed: {}", std::strerror(k.supported_cpuid_errno));
    if (k.supported_cpuid.empty()) return "KVM_GET_SUPPORTED_CPUID returned no entries";
    return "";
}

FeatureSet guest_set(const host::KvmProbe& k) {
    std::vector<cpuid::Leaf> leaves;
    for (const auto& e : k.supported_cpuid) leaves.push_back({e.function, e.index, e.eax, e.ebx, e.ecx, e.edx});
    std::map<uint32_t, uint64_t> msrs;
    for (const auto& m : k.feature_msrs)
        if (m.readable) msrs[m.index] = m.value;
    return features_of(leaves, msrs);
}

// host-model as libvirt wrote it: the model's features, plus require, minus disable.
std::optional<FeatureSet> expand_host_model(const DomCapsFacts& d, std::string& why) {
    if (!d.present) {
        why = d.error.empty() ? "libvirt gave no domain capabilities for virt type kvm" : "libvirt's domain capabilities (kvm): " + d.error;
        return std::nullopt;
    }
    if (d.host_model.empty()) {
        why = "libvirt offers no host-model CPU for virt type kvm";
        return std::nullopt;
    }
    const auto* m = cpu_map().model(d.host_model);
    if (!m) {
        why = "libvirt's host-model " + d.host_model + " is not in the cpu_map kvmready was built with";
        return std::nullopt;
    }
    FeatureSet s = m->features;
    for (const auto& [policy, name] : d.host_model_features) {
        if (policy == "disable" || policy == "forbid") s.erase(name);
        else s.insert(name);
    }
    return s;
}

std::string dotted_version(uint64_t v) {
    if (!v) return "";
    return fmt::format("{}.{}.{}", v / 1000000, v / 1000 % 1000, v % 1000);
}

nlohmann::ordered_json view_json(const FeatureSet& s, const std::string& vendor, const HostCpu& h, const std::string& source) {
    const int level = x86_64_level(s);
    auto fit = closest_model(s, vendor, {{h.family, h.model}});
    auto run = runnable_model(s, vendor);
    nlohmann::ordered_json model = nullptr;
    if (fit) model = {{"name", fit->model}, {"require", fit->require}, {"disable", fit->disable}};
    return {{"source", source},
            {"x86_64_level", level ? nlohmann::ordered_json(level_name(level)) : nlohmann::ordered_json()},
            {"model", model},
            {"runnable_model", run ? nlohmann::ordered_json(run->model) : nlohmann::ordered_json()},
            {"count", s.size()},
            {"features", s}};
}

std::optional<FeatureSet> read_set(const nlohmann::json& v) {
    if (!v.is_object() || !v.contains("features") || !v["features"].is_array()) return std::nullopt;
    FeatureSet s;
    for (const auto& x : v["features"])
        if (x.is_string()) s.insert(x.get<std::string>());
    return s;
}

std::string str(const nlohmann::json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

unsigned num(const nlohmann::json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_number_unsigned() ? it->get<unsigned>() : 0;
}

}  // namespace

const FeatureSet& HostCpu::usable() const {
    if (guest_features) return *guest_features;
    if (host_model) return *host_model;
    return cpu_features;
}

std::string HostCpu::basis() const { return guest_features ? "kvm" : host_model ? "host-model" : "cpu"; }

HostCpu host_cpu_from_facts(const Facts& f) {
    HostCpu h;
    h.name = f.kernel.hostname;
    h.source = f.cpu.source;
    h.kernel = f.kernel.release;
    h.qemu_version = f.virt.qemu.version;
    h.libvirt_version = dotted_version(f.virt.libvirt.snapshot.library_version);
    if (f.cpu.available) {
        const auto d = cpuid::decode(f.cpu.dump);
        h.cpu_known = true;
        h.vendor_id = d.vendor;
        h.vendor = vendor_name(d.vendor);
        h.brand = d.brand;
        h.family = d.family;
        h.model = d.model;
        h.stepping = d.stepping;
        h.cpu_features = features_of(f.cpu.dump.leaves, f.cpu.dump.msrs);
        // Intel CPUs set CPUID.80000001h:EDX.SYSCALL only when read in 64-bit
        // mode; a dump taken by a 32-bit program lacks it though the CPU has it.
        if (h.cpu_features.count("lm")) h.cpu_features.insert("syscall");
    }
    h.guest_reason = guest_unavailable(f);
    if (h.guest_reason.empty()) h.guest_features = guest_set(f.kvm);
    if (f.cpu.source.rfind("dump:", 0) == 0) h.host_model_reason = "the CPU comes from a CPUID dump: libvirt's host-model is this machine's";
    else if (!f.virt.libvirt.queried) h.host_model_reason = "libvirt was not asked";
    else h.host_model = expand_host_model(f.virt.libvirt.domcaps_kvm, h.host_model_reason);
    if (h.host_model) {
        h.host_model_name = f.virt.libvirt.domcaps_kvm.host_model;
        h.host_model_reason.clear();
    }
    return h;
}

nlohmann::ordered_json host_cpu_json(const HostCpu& h) {
    nlohmann::ordered_json j = {{"vendor", h.vendor},
                                {"vendor_id", h.vendor_id},
                                {"brand", h.brand},
                                {"family", h.family},
                                {"model", h.model},
                                {"stepping", h.stepping},
                                {"source", h.source},
                                {"cpu_map", cpu_map().error.empty() ? fmt::format("libvirt cpu_map, {} models, {} features", cpu_map().models.size(),
                                                                                  cpu_map().features.size())
                                                                    : cpu_map().error}};
    j["cpu_features"] = h.cpu_known ? view_json(h.cpu_features, h.vendor, h, "CPUID") : nlohmann::ordered_json();
    j["guest_features"] = h.guest_features ? view_json(*h.guest_features, h.vendor, h, "KVM_GET_SUPPORTED_CPUID") : nlohmann::ordered_json();
    j["guest_features_reason"] = h.guest_features ? nlohmann::ordered_json() : nlohmann::ordered_json(h.guest_reason);
    if (h.host_model) {
        j["host_model"] = view_json(*h.host_model, h.vendor, h, "libvirt domain capabilities (kvm)");
        j["host_model"]["libvirt_model"] = h.host_model_name;
    } else {
        j["host_model"] = nullptr;
    }
    j["host_model_reason"] = h.host_model ? nlohmann::ordered_json() : nlohmann::ordered_json(h.host_model_reason);
    j["software"] = {{"kernel", h.kernel}, {"qemu", h.qemu_version}, {"libvirt", h.libvirt_version}};
    return j;
}

std::optional<HostCpu> host_cpu_from_report(const nlohmann::json& report, const std::string& name, std::string& error) {
    if (!report.is_object() || !report.contains("cpu")) {
        error = "the report has no cpu section (made by a kvmready without it?)";
        return std::nullopt;
    }
    const auto& c = report["cpu"];
    if (!c.is_object()) {
        error = "the report's cpu section is not an object";
        return std::nullopt;
    }
    HostCpu h;
    h.name = name;
    h.vendor = str(c, "vendor");
    h.vendor_id = str(c, "vendor_id");
    h.brand = str(c, "brand");
    h.family = num(c, "family");
    h.model = num(c, "model");
    h.stepping = num(c, "stepping");
    h.source = str(c, "source");
    if (auto s = read_set(c.value("cpu_features", nlohmann::json()))) {
        h.cpu_known = true;
        h.cpu_features = std::move(*s);
    }
    h.guest_features = read_set(c.value("guest_features", nlohmann::json()));
    h.guest_reason = str(c, "guest_features_reason");
    h.host_model = read_set(c.value("host_model", nlohmann::json()));
    if (h.host_model) h.host_model_name = str(c["host_model"], "libvirt_model");
    h.host_model_reason = str(c, "host_model_reason");
    if (c.contains("software") && c["software"].is_object()) {
        h.kernel = str(c["software"], "kernel");
        h.qemu_version = str(c["software"], "qemu");
        h.libvirt_version = str(c["software"], "libvirt");
    }
    if (!h.cpu_known && !h.guest_features && !h.host_model) {
        error = "the report's cpu section lists no features (no CPUID was read on that host)";
        return std::nullopt;
    }
    return h;
}

}  // namespace kvmready::fleet
