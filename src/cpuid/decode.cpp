// Decoding of the CPUID bits kvmready judges, and the serialisers.
#include "cpuid/cpuid.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace kvmready::cpuid {

namespace {

constexpr uint32_t kExtBase = 0x80000000u;

bool bit(uint32_t reg, unsigned n) { return ((reg >> n) & 1u) != 0; }

void append_le(std::string& s, uint32_t reg) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((reg >> (8 * i)) & 0xffu));
}

std::string collapse_whitespace(std::string_view s) {
    std::string out;
    bool pending_space = false;
    for (char c : s) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out.push_back(' ');
        pending_space = false;
        out.push_back(c);
    }
    return out;
}

// AMD 8000000Ah EDX, named as Linux's cpufeatures.h word 15 does (the
// /proc/cpuinfo spelling where it has one, else the lower-cased macro name).
// AMD-defined bits the kernel does not name are left out.
constexpr std::array<std::pair<unsigned, const char*>, 21> kSvmFeatureBits = {{
    {0, "npt"},
    {1, "lbrv"},
    {2, "svm_lock"},
    {3, "nrip_save"},
    {4, "tsc_scale"},
    {5, "vmcb_clean"},
    {6, "flushbyasid"},
    {7, "decodeassists"},
    {10, "pausefilter"},
    {12, "pfthreshold"},
    {13, "avic"},
    {15, "v_vmsave_vmload"},
    {16, "vgif"},
    {17, "gmet"},
    {18, "x2avic"},
    {19, "sss_check"},
    {20, "v_spec_ctrl"},
    {25, "vnmi"},
    {28, "svme_addr_chk"},
    {29, "bus_lock_threshold"},
    {30, "idle_hlt"},
}};

// 8000001Fh EAX (kernel word 19).
constexpr std::array<std::pair<unsigned, const char*>, 4> kMemEncryptionBits = {{
    {0, "sme"},
    {1, "sev"},
    {3, "sev_es"},
    {4, "sev_snp"},
}};

// JSON output must be valid UTF-8; register garbage in vendor/brand strings
// (undefined leaves on old CPUs) is not, so non-ASCII bytes become U+FFFD.
std::string json_safe(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (static_cast<unsigned char>(c) < 0x80)
            out.push_back(c);
        else
            out += "\xEF\xBF\xBD";
    }
    return out;
}

}  // namespace

std::optional<Leaf> Dump::find(uint32_t leaf, uint32_t subleaf) const {
    for (const Leaf& l : leaves)
        if (l.leaf == leaf && l.subleaf == subleaf) return l;
    return std::nullopt;
}

Decoded decode(const Dump& dump) {
    Decoded d;
    const auto l0 = dump.find(0);
    if (l0) {
        d.max_basic = l0->eax;
        append_le(d.vendor, l0->ebx);
        append_le(d.vendor, l0->edx);
        append_le(d.vendor, l0->ecx);
    }

    const auto l1 = l0 && d.max_basic >= 1 ? dump.find(1) : std::nullopt;
    if (l1) {
        d.has_leaf1 = true;
        d.signature = l1->eax;
        d.vmx = bit(l1->ecx, 5);
        d.hypervisor = bit(l1->ecx, 31);
        const unsigned base_family = (l1->eax >> 8) & 0xfu;
        const unsigned ext_family = (l1->eax >> 20) & 0xffu;
        const unsigned base_model = (l1->eax >> 4) & 0xfu;
        const unsigned ext_model = (l1->eax >> 16) & 0xfu;
        d.family = base_family == 0xf ? base_family + ext_family : base_family;
        d.model = (base_family == 0x6 || base_family == 0xf) ? (ext_model << 4) + base_model : base_model;
        d.stepping = l1->eax & 0xfu;
    }

    // Not gated on the hypervisor bit: Hyper-V root partitions and some
    // guests disagree between the two, and the dump shows what was read.
    if (const auto hv = dump.find(0x40000000u); hv && (hv->ebx | hv->ecx | hv->edx) != 0) {
        std::string sig;
        append_le(sig, hv->ebx);
        append_le(sig, hv->ecx);
        append_le(sig, hv->edx);
        while (!sig.empty() && sig.back() == '\0') sig.pop_back();
        d.hypervisor_vendor = sig;
    }

    // Intel P5/P6 answer 80000000h with basic-leaf data, so only a maximum in
    // the extended range counts.
    if (const auto e0 = dump.find(kExtBase)) {
        d.has_extended = true;
        if (e0->eax >= kExtBase && e0->eax <= 0x8000ffffu) d.max_extended = e0->eax;
    }
    auto ext = [&](uint32_t leaf) -> std::optional<Leaf> {
        if (d.max_extended < leaf) return std::nullopt;
        return dump.find(leaf);
    };

    if (const auto e1 = ext(0x80000001u)) {
        d.svm = bit(e1->ecx, 2);
        d.long_mode = bit(e1->edx, 29);
    }

    const auto b2 = ext(0x80000002u), b3 = ext(0x80000003u), b4 = ext(0x80000004u);
    if (b2 && b3 && b4) {
        std::string raw;
        for (const Leaf* l : {&*b2, &*b3, &*b4}) {
            append_le(raw, l->eax);
            append_le(raw, l->ebx);
            append_le(raw, l->ecx);
            append_le(raw, l->edx);
        }
        if (const size_t nul = raw.find('\0'); nul != std::string::npos) raw.resize(nul);
        d.brand = collapse_whitespace(raw);
    }

    if (d.svm) {
        if (const auto a = ext(0x8000000au)) {
            for (const auto& [n, feature] : kSvmFeatureBits)
                if (bit(a->edx, n)) d.svm_features.emplace_back(feature);
            d.svm_revision = a->eax & 0xffu;
            d.svm_asids = a->ebx;
        }
    }

    if (const auto f = ext(0x8000001fu)) {
        for (const auto& [n, feature] : kMemEncryptionBits)
            if (bit(f->eax, n)) d.mem_encryption.emplace_back(feature);
    }
    return d;
}

nlohmann::ordered_json to_json(const Decoded& d) {
    nlohmann::ordered_json j;
    j["vendor"] = json_safe(d.vendor);
    j["brand"] = json_safe(d.brand);
    j["family"] = d.family;
    j["model"] = d.model;
    j["stepping"] = d.stepping;
    j["signature"] = fmt::format("0x{:08x}", d.signature);
    j["max_basic_leaf"] = fmt::format("0x{:08x}", d.max_basic);
    j["max_extended_leaf"] = fmt::format("0x{:08x}", d.max_extended);
    j["vmx"] = d.vmx;
    j["svm"] = d.svm;
    j["hypervisor"] = d.hypervisor;
    j["hypervisor_vendor"] = d.hypervisor_vendor ? nlohmann::ordered_json(json_safe(*d.hypervisor_vendor))
                                                 : nlohmann::ordered_json(nullptr);
    j["long_mode"] = d.long_mode;
    if (d.svm) {
        j["svm_features"] = d.svm_features;
        j["svm_revision"] = d.svm_revision ? nlohmann::ordered_json(*d.svm_revision) : nlohmann::ordered_json(nullptr);
        j["svm_asids"] = d.svm_asids ? nlohmann::ordered_json(*d.svm_asids) : nlohmann::ordered_json(nullptr);
    }
    j["mem_encryption"] = d.mem_encryption;
    return j;
}

std::string to_cpuid_r(const Dump& dump) {
    // The real tool prints leaves in ascending order; so do we, whatever order
    // the source format listed them in (RJCP puts 80000000h after leaf 0).
    std::vector<Leaf> leaves = dump.leaves;
    std::stable_sort(leaves.begin(), leaves.end(), [](const Leaf& a, const Leaf& b) {
        return a.leaf != b.leaf ? a.leaf < b.leaf : a.subleaf < b.subleaf;
    });
    std::string out = "CPU 0:\n";
    out.reserve(out.size() + leaves.size() * 80);
    for (const Leaf& l : leaves)
        out += fmt::format("   0x{:08x} 0x{:02x}: eax=0x{:08x} ebx=0x{:08x} ecx=0x{:08x} edx=0x{:08x}\n", l.leaf,
                           l.subleaf, l.eax, l.ebx, l.ecx, l.edx);
    return out;
}

}  // namespace kvmready::cpuid
