// The kernel log, as evidence: the kernel says why KVM is absent better than
// any file ("kvm: disabled by bios", "kvm_amd: SVM not supported",
// "kvm-pvm: ... not binding", "Hypervisor detected: PVM"). Only the lines
// about virtualization are kept (KVM and its vendor/flavour modules, the
// IOMMU, SEV/TDX, the hypervisor the kernel detected), so recordings and
// support bundles carry evidence, not the whole log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::host {

struct KernelLogLine {
    int64_t usec = -1;             // since boot; -1 when the source has no time stamp
    int level = -1;                // 0 emerg .. 7 debug; -1 unknown
    std::string text;              // the message, non-ASCII bytes escaped as \xHH (as the kernel itself escapes)
};

struct KernelLog {
    // false: an offline tree recorded before kvmready read the kernel log.
    bool available = true;
    std::string source;            // "/dev/kmsg", "syslog(2)", or "recorded"
    std::string error;             // why it could not be read; "" when read
    int error_code = 0;            // its errno (EPERM: dmesg_restrict without CAP_SYSLOG)
    std::vector<KernelLogLine> lines;  // the virtualization lines, oldest first
    uint64_t records = 0;          // kernel records scanned
    bool truncated = false;        // a bound (time, records, kept lines) cut the read short
    bool lost = false;             // the ring buffer had already overwritten older records
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelLogLine, usec, level, text)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KernelLog, source, error, error_code, lines, records, truncated, lost)

// Bounds of one read: the log is read only when a finding needs it, and a
// huge or endlessly growing buffer must not stall `check`.
struct KernelLogLimits {
    int max_ms = 200;
    uint64_t max_records = 200000;
    size_t max_lines = 400;        // kept (matching) lines
};

// Is this kernel message about virtualization (kept), or noise (the
// kvm-clock/kvm-guest chatter of every KVM guest)?
bool is_virtualization_log_line(std::string_view text);

// Parsers for the two live sources, shared with tests: one /dev/kmsg record
// ("PRIO,SEQ,USEC,FLAGS;text\n KEY=VALUE...") and the syslog(2) text
// ("<PRIO>[ SECONDS.USEC] text" per line). Only the kernel's own messages
// (facility 0) count: user space may write to /dev/kmsg, and a forged
// "kvm: disabled by bios" must not become a diagnosis.
// Returns false when the record is not a kernel message or is malformed.
bool parse_kmsg_record(std::string_view record, KernelLogLine& out);
void parse_syslog_text(std::string_view text, KernelLog& out, const KernelLogLimits& lim);

// Read the live log: /dev/kmsg (non-blocking), else syslog(2).
KernelLog read_kernel_log(const KernelLogLimits& lim = {});

}  // namespace kvmready::host
