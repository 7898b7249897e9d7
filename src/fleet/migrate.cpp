#include "fleet/migrate.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace kvmready::fleet {

namespace {

std::string cpu_words(const HostCpu& h) {
    return fmt::format("{}'s CPU ({}family {} model {})", h.name, h.brand.empty() ? "" : h.brand + ", ", h.family, h.model);
}

std::string versions(const HostCpu& x, const HostCpu& y) {
    std::string out;
    if (!x.kernel.empty() && !y.kernel.empty() && x.kernel != y.kernel) out += fmt::format("; kernels {} and {}", x.kernel, y.kernel);
    if (!x.qemu_version.empty() && !y.qemu_version.empty() && x.qemu_version != y.qemu_version)
        out += fmt::format("; QEMU {} and {}", x.qemu_version, y.qemu_version);
    if (!x.libvirt_version.empty() && !y.libvirt_version.empty() && x.libvirt_version != y.libvirt_version)
        out += fmt::format("; libvirt {} and {}", x.libvirt_version, y.libvirt_version);
    return out;
}

// f is given by `has`, not by `lacks`: why.
FeatureDiff explain(const std::string& f, const HostCpu& has, const HostCpu& lacks) {
    FeatureDiff d;
    d.feature = f;
    const bool lacks_cpu = lacks.cpu_known && !lacks.cpu_features.count(f);
    const bool has_cpu_lacks = has.cpu_known && !has.cpu_features.count(f);
    if (mitigation_feature(f)) {
        d.reason = DiffReason::MicrocodeMitigation;
        d.detail = fmt::format("speculation-control/CPU-bug bit: {}'s microcode, kernel or mitigation settings do not expose it{}", lacks.name,
                               lacks_cpu ? "" : " to guests") + versions(has, lacks);
    } else if (lacks.basis() == "kvm" && lacks.cpu_known && !lacks_cpu) {
        d.reason = DiffReason::KvmWithheld;
        d.detail = fmt::format("{}'s CPU has it; KVM there (kernel {}) does not give it to guests", lacks.name, lacks.kernel) + versions(has, lacks);
    } else if (lacks.basis() == "host-model" && lacks.cpu_known && !lacks_cpu) {
        d.reason = DiffReason::QemuLibvirt;
        d.detail = fmt::format("{}'s CPU has it; libvirt's host-model there leaves it out", lacks.name) + versions(has, lacks);
    } else if (has.basis() != "cpu" && has_cpu_lacks) {
        d.reason = DiffReason::KvmEmulated;
        d.detail = fmt::format("KVM on {} offers it without the CPU having it{}", has.name,
                               lacks.basis() == "cpu" ? fmt::format("; {} reported only its CPU's own features", lacks.name) : "");
    } else if (lacks_cpu && (lacks.family != has.family || lacks.model != has.model)) {
        d.reason = DiffReason::HardwareGeneration;
        d.detail = cpu_words(lacks) + " lacks it; " + cpu_words(has) + " has it";
    } else if (lacks_cpu) {
        d.reason = DiffReason::FirmwareOrMicrocode;
        d.detail = fmt::format("same CPU family/model, but {}'s CPU does not report it: disabled by firmware (BIOS) or microcode", lacks.name);
    } else {
        d.reason = DiffReason::Unknown;
        d.detail = fmt::format("{} gives it; {}'s report does not tell why it lacks it", has.name, lacks.name);
    }
    return d;
}

}  // namespace

std::string to_string(DiffReason r) {
    switch (r) {
    case DiffReason::HardwareGeneration: return "hardware-generation";
    case DiffReason::FirmwareOrMicrocode: return "firmware-or-microcode";
    case DiffReason::KvmWithheld: return "kvm-withheld";
    case DiffReason::KvmEmulated: return "kvm-emulated";
    case DiffReason::MicrocodeMitigation: return "microcode-mitigations";
    case DiffReason::QemuLibvirt: return "qemu-libvirt";
    case DiffReason::Unknown: return "unknown";
    }
    return "unknown";
}

bool mitigation_feature(const std::string& name) {
    // libvirt's names of the speculation-control and CPU-bug bits (CPUID and
    // IA32_ARCH_CAPABILITIES), and TSX, which microcode updates turn off.
    static constexpr std::array<const char*, 27> names = {
        "spec-ctrl", "stibp",   "ssbd",           "md-clear",  "arch-capabilities", "core-capability", "ibpb",
        "ibrs",      "amd-stibp", "amd-ssbd",     "virt-ssbd", "amd-no-ssb",        "rdctl-no",        "ibrs-all",
        "rsba",      "skip-l1dfl-vmentry", "ssb-no", "mds-no", "pschange-mc-no",    "tsx-ctrl",        "taa-no",
        "split-lock-detect", "hle", "rtm",        "tsx-ldtrk", "fb-clear",          "flush-l1d"};
    return std::find_if(names.begin(), names.end(), [&](const char* n) { return name == n; }) != names.end();
}

PairResult compare_pair(const HostCpu& a, const HostCpu& b) {
    PairResult r;
    r.a = a;
    r.b = b;
    r.same_vendor = a.vendor == b.vendor;
    std::vector<std::string> only_a, only_b;
    const auto &fa = a.usable(), &fb = b.usable();
    std::set_difference(fa.begin(), fa.end(), fb.begin(), fb.end(), std::back_inserter(only_a));
    std::set_difference(fb.begin(), fb.end(), fa.begin(), fa.end(), std::back_inserter(only_b));
    r.a_to_b = r.same_vendor && only_a.empty();
    r.b_to_a = r.same_vendor && only_b.empty();
    for (const auto& f : only_a) {
        r.diffs.push_back(explain(f, a, b));
        r.diffs.back().on_a = true;
    }
    for (const auto& f : only_b) r.diffs.push_back(explain(f, b, a));
    r.common.hosts = {a, b};
    r.common.result = baseline(r.common.hosts);
    return r;
}

std::string pair_text(const PairResult& r) {
    auto line = [](const HostCpu& h) {
        const int lv = x86_64_level(h.usable());
        return fmt::format("  {}: {} {} (family {} model {}), {} features from {}, {}\n", h.name, h.vendor.empty() ? h.vendor_id : h.vendor,
                           h.brand, h.family, h.model, h.usable().size(),
                           h.basis() == "kvm"          ? "what KVM gives guests"
                           : h.basis() == "host-model" ? "libvirt's host-model"
                                                       : "the CPU's own CPUID (no KVM data: " + h.guest_reason + ")",
                           lv ? level_name(lv) : "below x86-64-v1");
    };
    std::string out = "Hosts\n" + line(r.a) + line(r.b);
    size_t na = 0, nb = 0;
    for (const auto& d : r.diffs) (d.on_a ? na : nb)++;
    auto dir = [&](const HostCpu& from, const HostCpu& to, bool ok, size_t missing) {
        if (!r.same_vendor) return fmt::format("  {} -> {}: no: the CPU vendors differ ({} and {})\n", from.name, to.name, from.vendor_id, to.vendor_id);
        if (ok) return fmt::format("  {} -> {}: yes: {} gives every feature {}'s guests can have\n", from.name, to.name, to.name, from.name);
        return fmt::format("  {} -> {}: no: {} feature{} of {} missing on {}\n", from.name, to.name, missing, missing == 1 ? "" : "s", from.name,
                           to.name);
    };
    out += "Live migration of a guest using all its host gives\n" + dir(r.a, r.b, r.a_to_b, na) + dir(r.b, r.a, r.b_to_a, nb);
    if (!r.diffs.empty()) {
        out += "Features that differ\n";
        for (const auto& d : r.diffs)
            out += fmt::format("  {:<20} only on {:<12} {}: {}\n", d.feature, d.on_a ? r.a.name : r.b.name, to_string(d.reason), d.detail);
    }
    return out + "\nWhat both can run (give guests this CPU and they migrate both ways)\n" + baseline_text(r.common);
}

nlohmann::ordered_json pair_json(const PairResult& r) {
    nlohmann::ordered_json diffs = nlohmann::ordered_json::array();
    for (const auto& d : r.diffs)
        diffs.push_back({{"feature", d.feature},
                         {"on", d.on_a ? r.a.name : r.b.name},
                         {"missing_on", d.on_a ? r.b.name : r.a.name},
                         {"reason", to_string(d.reason)},
                         {"detail", d.detail}});
    return {{"a", r.a.name},
            {"b", r.b.name},
            {"same_vendor", r.same_vendor},
            {"a_to_b", r.a_to_b},
            {"b_to_a", r.b_to_a},
            {"compatible", r.a_to_b && r.b_to_a},
            {"differences", diffs},
            {"baseline", baseline_json(r.common)}};
}

}  // namespace kvmready::fleet
