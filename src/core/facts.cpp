#include "core/facts.hpp"

namespace kvmready {

namespace host {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StatInfo, exists, error, type, major, minor, mode, uid, gid)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AclEntry, tag, id, perms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Group, gid, name)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(User, name, uid, gid, groups)
}  // namespace host

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelFacts, release, cmdline, hostname, os_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MsrReading, value, error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MsrFacts, source, feature_control, vm_cr)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModuleInfo, name, builtin, initstate, parameters)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModuleFacts, module_support, modules_disabled, present,
                                                modules_dir_found, installed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DeviceFacts, path, stat, acl, owner_name, group_name, misc_read, misc_minor,
                                                dev_fstype)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelLogFacts, read, reason, log)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AccessFacts, requested_user, is_current, user, lookup_error,
                                                process_groups, open_errno)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HypervisorFacts, dmi, sys_hypervisor_type, container_env,
                                                containerenv_file, dockerenv_file, pid1_cgroup, root_fstype, wsl)

namespace {

nlohmann::json cpu_to_json(const CpuFacts& c) {
    return {{"source", c.source},
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

CpuFacts cpu_from_json(const nlohmann::json& j) {
    CpuFacts c;
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
    return c;
}

}  // namespace

nlohmann::json facts_to_json(const Facts& f) {
    return {{"schema_version", f.schema_version},
            {"source", f.source},
            {"kernel", f.kernel},
            {"cpu", cpu_to_json(f.cpu)},
            {"msr", f.msr},
            {"modules", f.modules},
            {"device", f.device},
            {"access", f.access},
            {"kvm", f.kvm},
            {"hypervisor", f.hypervisor},
            {"kernel_log", f.kernel_log},
            {"request", f.request},
            {"virt", f.virt},
            {"net", f.net},
            {"system", f.system},
            {"smoke", f.smoke},
            {"config", f.config}};
}

Facts facts_from_json(const nlohmann::json& j) {
    Facts f;
    f.schema_version = j.value("schema_version", 1);
    f.source = j.value("source", "");
    f.kernel = j.value("kernel", KernelFacts{});
    f.cpu = cpu_from_json(j.value("cpu", nlohmann::json::object()));
    f.msr = j.value("msr", MsrFacts{});
    f.modules = j.value("modules", ModuleFacts{});
    f.device = j.value("device", DeviceFacts{});
    f.access = j.value("access", AccessFacts{});
    f.kvm = j.value("kvm", host::KvmProbe{});
    f.hypervisor = j.value("hypervisor", HypervisorFacts{});
    f.kernel_log = j.value("kernel_log", KernelLogFacts{});
    f.request = j.value("request", Request{});
    f.virt = j.value("virt", VirtFacts{});
    f.net = j.value("net", NetFacts{});
    f.system = j.value("system", SystemFacts{});
    f.smoke = j.value("smoke", smoke::SmokeFacts{});
    f.config = j.value("config", ConfigFacts{});
    return f;
}

}  // namespace kvmready
