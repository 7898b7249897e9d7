#include "fleet/cpu_models_dialects.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "util/text.hpp"

namespace kvmready::fleet {

namespace {

// "+a;-b" with QEMU's names.
std::string qemu_flags(const ModelFit& m) {
    std::string out;
    for (const auto& f : m.require) out += (out.empty() ? "+" : ";+") + qemu_feature_name(f);
    for (const auto& f : m.disable) out += (out.empty() ? "-" : ";-") + qemu_feature_name(f);
    return out;
}

}  // namespace

std::string libvirt_cpu_xml(const ModelFit& m, const std::string& vendor) {
    std::string out = "<cpu mode='custom' match='exact' check='partial'>\n";
    out += fmt::format("  <model fallback='forbid'>{}</model>\n", util::xml_escape(m.model));
    if (!vendor.empty()) out += fmt::format("  <vendor>{}</vendor>\n", util::xml_escape(vendor));
    for (const auto& f : m.require) out += fmt::format("  <feature policy='require' name='{}'/>\n", util::xml_escape(f));
    for (const auto& f : m.disable) out += fmt::format("  <feature policy='disable' name='{}'/>\n", util::xml_escape(f));
    return out + "</cpu>\n";
}

std::string nova_conf(const ModelFit& m) {
    std::string flags;
    for (const auto& f : m.require) flags += (flags.empty() ? "" : ", ") + util::lower(f);
    for (const auto& f : m.disable) flags += (flags.empty() ? "-" : ", -") + util::lower(f);
    std::string out = "[libvirt]\ncpu_mode = custom\ncpu_models = " + m.model + "\n";
    if (!flags.empty()) out += "cpu_model_extra_flags = " + flags + "\n";
    return out;
}

bool proxmox_vm_flag(const std::string& qemu_name) {
    static constexpr std::array<const char*, 12> allowed = {"pcid",      "spec-ctrl",  "ibpb",        "ssbd",     "virt-ssbd", "amd-ssbd",
                                                            "amd-no-ssb", "pdpe1gb",   "md-clear",    "hv-tlbflush", "hv-evmcs", "aes"};
    return std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return qemu_name == a; }) != allowed.end();
}

std::string proxmox_cpu(const ModelFit& m, const std::string& name) {
    const std::string flags = qemu_flags(m);
    bool simple = true;
    for (const auto& f : m.require) simple = simple && proxmox_vm_flag(qemu_feature_name(f));
    for (const auto& f : m.disable) simple = simple && proxmox_vm_flag(qemu_feature_name(f));
    if (simple) return "cpu: " + m.model + (flags.empty() ? "" : ",flags=" + flags) + "\n";
    return fmt::format("# /etc/pve/virtual-guest/cpu-models.conf\ncpu-model: {}\n    flags {}\n    reported-model {}\n\n"
                       "# the VM's configuration (qm set VMID --cpu custom-{})\ncpu: custom-{}\n",
                       name, flags, m.model, name, name);
}

std::string kubevirt_cpu_yaml(const ModelFit& m) {
    std::string out = "spec:\n  domain:\n    cpu:\n      model: " + m.model + "\n";
    if (m.require.empty() && m.disable.empty()) return out;
    out += "      features:\n";
    for (const auto& f : m.require) out += "        - name: " + f + "\n          policy: require\n";
    for (const auto& f : m.disable) out += "        - name: " + f + "\n          policy: disable\n";
    return out;
}

}  // namespace kvmready::fleet
