// CPUID dumps: parsing every format a customer might send, and decoding the
// bits kvmready judges. Pure code: no OS access (the live source is in host/).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::cpuid {

struct Leaf {
    uint32_t leaf = 0;
    uint32_t subleaf = 0;
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// Registers of the first logical CPU of a dump (or of the live CPU), plus any
// MSR values the dump carried (InstLatX64 full reports).
struct Dump {
    std::string format;                    // e.g. "cpuid-r", "aida64", "libcpuid-raw"
    std::vector<Leaf> leaves;              // in the order they were read
    std::map<uint32_t, uint64_t> msrs;     // MSR index -> value
    int logical_cpus = 0;                  // blocks seen in the dump

    // First entry for (leaf, subleaf); nullopt when the dump lacks it.
    [[nodiscard]] std::optional<Leaf> find(uint32_t leaf, uint32_t subleaf = 0) const;
};

// Thrown for data that is not a CPUID dump we understand. `line` is 1-based,
// 0 when the problem is not tied to one line (e.g. "no register lines").
struct ParseError : std::runtime_error {
    std::string file;
    int line;
    ParseError(std::string file_, int line_, const std::string& what);
};

// Auto-detects the format from the content. `name` is only used in errors.
Dump parse(std::string_view text, const std::string& name);

// The facts kvmready cares about, decoded with the maximum-leaf rules of
// FORMATS.md (never read a leaf above CPUID.0:EAX / CPUID.80000000h:EAX).
struct Decoded {
    std::string vendor;                    // exact 12 bytes of leaf 0 (spaces kept)
    std::string brand;                     // whitespace-collapsed, may be empty
    uint32_t max_basic = 0;
    uint32_t max_extended = 0;             // 0 when absent/invalid
    uint32_t signature = 0;                // CPUID.1:EAX
    unsigned family = 0, model = 0, stepping = 0;  // display values (ext. family/model folded in)
    bool vmx = false;                      // CPUID.1:ECX[5]
    bool svm = false;                      // CPUID.80000001h:ECX[2]
    bool hypervisor = false;               // CPUID.1:ECX[31]
    std::optional<std::string> hypervisor_vendor;  // leaf 40000000h signature
    bool has_leaf1 = false;
    bool has_extended = false;             // 80000000h present in the dump
    // AMD: leaf 8000000Ah EDX feature names that are set (npt, nrip_save, avic, ...)
    std::vector<std::string> svm_features;
    std::optional<unsigned> svm_revision;  // 8000000Ah EAX[7:0]
    std::optional<unsigned> svm_asids;     // 8000000Ah EBX
    // AMD memory encryption (8000001Fh EAX): sme, sev, sev_es, sev_snp when present
    std::vector<std::string> mem_encryption;
    // Intel: SGX/TDX-related and other bits may be added; keep names kernel-style.
    bool long_mode = false;                // 80000001h EDX[29]
};

Decoded decode(const Dump& dump);

// Stable JSON for `kvmready cpuid --json` (keys documented in man page).
nlohmann::ordered_json to_json(const Decoded& d);

// Serialise a dump in the `cpuid -r` format of Debian's cpuid tool (one CPU),
// so recorded facts and support bundles carry a dump any tool can read.
std::string to_cpuid_r(const Dump& dump);

}  // namespace kvmready::cpuid
