#include "core/facts.hpp"

// Each facts struct declares its serialisation next to itself (facts*.hpp,
// host/*.hpp); only the CPU facts need code of their own.
namespace kvmready {

void to_json(nlohmann::json& j, const CpuFacts& c) {
    j = {{"source", c.source},
         {"available", c.available},
         {"unavailable_reason", c.unavailable_reason},
         {"dump_format", c.dump.format},
         {"cpuid_r", c.available ? cpuid::to_cpuid_r(c.dump) : std::string{}},
         {"cpuinfo_read", c.cpuinfo_read},
         {"cpuinfo_vendor", c.cpuinfo_vendor},
         {"cpuinfo_model_name", c.cpuinfo_model_name},
         {"cpuinfo_flags", c.cpuinfo_flags},
         {"cpuinfo_has_vmx_flags_line", c.cpuinfo_has_vmx_flags_line},
         {"cpuinfo_vmx_flags", c.cpuinfo_vmx_flags}};
}

void from_json(const nlohmann::json& j, CpuFacts& c) {
    c = CpuFacts{};
    c.source = j.value("source", "");
    c.available = j.value("available", false);
    c.unavailable_reason = j.value("unavailable_reason", "");
    if (auto text = j.value("cpuid_r", std::string{}); c.available && !text.empty()) {
        c.dump = cpuid::parse(text, "facts.cpu.cpuid_r");
        c.dump.format = j.value("dump_format", c.dump.format);
    }
    c.cpuinfo_read = j.value("cpuinfo_read", false);
    c.cpuinfo_vendor = j.value("cpuinfo_vendor", "");
    c.cpuinfo_model_name = j.value("cpuinfo_model_name", "");
    c.cpuinfo_flags = j.value("cpuinfo_flags", std::vector<std::string>{});
    c.cpuinfo_has_vmx_flags_line = j.value("cpuinfo_has_vmx_flags_line", false);
    c.cpuinfo_vmx_flags = j.value("cpuinfo_vmx_flags", std::vector<std::string>{});
}

nlohmann::json facts_to_json(const Facts& f) { return f; }

Facts facts_from_json(const nlohmann::json& j) { return j.get<Facts>(); }

}  // namespace kvmready
