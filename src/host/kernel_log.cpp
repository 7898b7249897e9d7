#include "host/kernel_log.hpp"

#include <fcntl.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace kvmready::host {

namespace {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// Whether text at pos starts with word (lower case), ignoring ASCII case.
bool starts_with_nocase(std::string_view text, size_t pos, std::string_view word) {
    if (text.size() - pos < word.size()) return false;
    for (size_t i = 0; i < word.size(); ++i)
        if (ascii_lower(text[pos + i]) != word[i]) return false;
    return true;
}

// Message prefixes of every KVM guest's paravirtual set-up: true of this
// machine as a guest, silent about whether it can host.
constexpr std::string_view kNoise[] = {"kvm-clock", "kvm-guest", "clocksource: kvm-clock", "sched_clock: kvm",
                                       "kvm_clock", "pvm-pv:", "pci-dma:"};
// Words of the lines that explain a host's virtualization (lower case):
// KVM and its modules (kvm:, kvm_intel:, kvm_amd:, kvm-pvm:), the CPU
// features and their firmware locks (vmx/svm, "disabled by bios"), the
// hypervisor the kernel detected, the IOMMUs (AMD-Vi, DMAR, iommu),
// confidential computing (SEV via ccp, TDX).
constexpr std::string_view kWords[] = {"kvm", "vmx", "svm", "pvm", "hypervisor detected", "amd-vi", "dmar", "iommu",
                                       "sev", "tdx", "ccp", "disabled by bios", "vt-x", "vt-d", "amd-v",
                                       "virtualization", "booting paravirtualized kernel"};

// The kernel escapes control bytes itself; bytes >= 0x80 come through raw
// (and may not be UTF-8). Keep the text ASCII, escaped the kernel's way.
std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

// A record split into its fields, the text still pointing into the read buffer.
struct RecordView {
    int64_t usec = -1;
    int level = -1;
    std::string_view text;
};

// Adds the record to log when it is about virtualization; false once the
// kept-lines bound is reached (the read stops there).
bool keep(KernelLog& log, const RecordView& r, const KernelLogLimits& lim) {
    if (!is_virtualization_log_line(r.text)) return true;
    if (log.lines.size() >= lim.max_lines) {
        log.truncated = true;
        return false;
    }
    log.lines.push_back({r.usec, r.level, escape(r.text)});
    return true;
}

bool parse_int(std::string_view s, int64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

// "PRIO,SEQ,USEC,FLAGS;TEXT\n KEY=VALUE..." (Documentation/ABI/testing/dev-kmsg).
bool parse_kmsg_view(std::string_view record, RecordView& out) {
    const size_t semi = record.find(';');
    if (semi == std::string_view::npos) return false;
    std::string_view head = record.substr(0, semi);
    std::string_view text = record.substr(semi + 1);
    // The message ends at the first newline; dictionary lines (" KEY=VALUE") follow.
    if (auto nl = text.find('\n'); nl != std::string_view::npos) text = text.substr(0, nl);
    int64_t fields[3] = {0, 0, 0};
    for (int i = 0; i < 3; ++i) {
        size_t comma = head.find(',');
        std::string_view f = head.substr(0, comma);
        if (!parse_int(f, fields[i])) return false;
        if (comma == std::string_view::npos) {
            if (i < 2) return false;
            head = {};
        } else {
            head = head.substr(comma + 1);
        }
    }
    const int64_t prio = fields[0];
    if ((prio >> 3) != 0) return false;  // not the kernel's own (user space wrote it)
    out.level = static_cast<int>(prio & 7);
    out.usec = fields[2];
    out.text = text;
    return true;
}

KernelLog read_kmsg(int fd, const KernelLogLimits& lim) {
    KernelLog log;
    log.source = "/dev/kmsg";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(lim.max_ms);
    // One record per read(); records are at most ~1 KiB of text plus
    // dictionary lines, and a short buffer fails with EINVAL.
    std::vector<char> buf(16384);
    for (;;) {
        if (log.records >= lim.max_records || ((log.records & 255) == 0 && std::chrono::steady_clock::now() > deadline)) {
            log.truncated = true;
            break;
        }
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) {  // overwritten before we got to it; the next read goes on
                log.lost = true;
                continue;
            }
            if (errno == EAGAIN) break;  // the end of the buffer: O_NONBLOCK never waits for new messages
            log.error = fmt::format("reading /dev/kmsg: {}", std::strerror(errno));
            log.error_code = errno;
            break;
        }
        if (n == 0) break;
        ++log.records;
        RecordView r;
        if (parse_kmsg_view(std::string_view(buf.data(), static_cast<size_t>(n)), r) && !keep(log, r, lim)) break;
    }
    return log;
}

KernelLog read_syslog(const KernelLogLimits& lim) {
    KernelLog log;
    log.source = "syslog(2)";
    constexpr int kReadAll = 3, kSizeBuffer = 10;
    int size = ::klogctl(kSizeBuffer, nullptr, 0);
    if (size <= 0) size = 1 << 20;
    size = std::min(size, 64 << 20);
    std::string buf(static_cast<size_t>(size), '\0');
    int n = ::klogctl(kReadAll, buf.data(), size);
    if (n < 0) {
        log.error_code = errno;
        log.error = fmt::format("syslog(2): {}", std::strerror(errno));
        return log;
    }
    buf.resize(static_cast<size_t>(n));
    parse_syslog_text(buf, log, lim);
    return log;
}

}  // namespace

bool is_virtualization_log_line(std::string_view text) {
    for (auto n : kNoise)
        if (starts_with_nocase(text, 0, n)) return false;
    // One pass over the line, trying only the words that start with the
    // letter at hand: every record of the log goes through here and nearly
    // all are dropped (~2,400 records on a booted VM), so this is the
    // kernel-log read's main cost after the read() calls themselves.
    static const auto by_first = [] {
        std::array<std::vector<std::string_view>, 128> t{};
        for (auto w : kWords) t[static_cast<unsigned char>(w[0])].push_back(w);
        return t;
    }();
    for (size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(ascii_lower(text[i]));
        if (c >= by_first.size()) continue;
        for (auto w : by_first[c])
            if (starts_with_nocase(text, i, w)) return true;
    }
    return false;
}

bool parse_kmsg_record(std::string_view record, KernelLogLine& out) {
    RecordView r;
    if (!parse_kmsg_view(record, r)) return false;
    out.level = r.level;
    out.usec = r.usec;
    out.text = std::string(r.text);
    return true;
}

void parse_syslog_text(std::string_view text, KernelLog& log, const KernelLogLimits& lim) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        if (line.empty()) continue;
        if (log.records >= lim.max_records) {
            log.truncated = true;
            return;
        }
        ++log.records;
        RecordView out;
        if (line.front() == '<') {
            size_t gt = line.find('>');
            int64_t prio = 0;
            if (gt == std::string_view::npos || !parse_int(line.substr(1, gt - 1), prio)) continue;
            if ((prio >> 3) != 0) continue;
            out.level = static_cast<int>(prio & 7);
            line = line.substr(gt + 1);
        }
        // "[   12.345678] " when printk.time is on.
        if (!line.empty() && line.front() == '[') {
            size_t close = line.find(']');
            if (close != std::string_view::npos) {
                std::string_view ts = line.substr(1, close - 1);
                while (!ts.empty() && ts.front() == ' ') ts.remove_prefix(1);
                size_t dot = ts.find('.');
                int64_t s = 0, us = 0;
                if (dot != std::string_view::npos && parse_int(ts.substr(0, dot), s) && parse_int(ts.substr(dot + 1), us))
                    out.usec = s * 1000000 + us;
                line = line.substr(close + 1);
                if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
            }
        }
        out.text = line;
        if (!keep(log, out, lim)) return;
    }
}

KernelLog read_kernel_log(const KernelLogLimits& lim) {
    int fd = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st{};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode))) {
        // Only a character device is the kernel's log (a file put there is not).
        ::close(fd);
        fd = -1;
        errno = ENODEV;
    }
    if (fd >= 0) {
        KernelLog log = read_kmsg(fd, lim);
        ::close(fd);
        if (log.error.empty() || !log.lines.empty()) return log;
        // EINVAL and the like: the syslog call may still work.
    }
    const int open_errno = fd >= 0 ? 0 : errno;
    KernelLog log = read_syslog(lim);
    if (!log.error.empty() && open_errno != 0) {
        log.error = fmt::format("/dev/kmsg: {}; {}", std::strerror(open_errno), log.error);
        if (log.error_code != EPERM) log.error_code = open_errno;
    }
    if (log.error_code == EPERM || log.error_code == EACCES) {
        // kernel.dmesg_restrict=1 keeps the log from users without CAP_SYSLOG.
        log.error += " (kernel.dmesg_restrict keeps the kernel log from users without CAP_SYSLOG; run as root)";
    }
    return log;
}

}  // namespace kvmready::host
