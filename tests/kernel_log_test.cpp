// The kernel-log reader: its two parsers on the kernel's formats, its filter,
// and the live reader held to util-linux's dmesg on this very machine.
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/kernel_log.hpp"
#include "support/spawn.hpp"

namespace {

using namespace kvmready::host;

TEST(KernelLogParse, KmsgRecordKeepsLevelTimeAndTextAndDropsDictionary) {
    KernelLogLine l;
    ASSERT_TRUE(parse_kmsg_record("6,339,5140900,-;kvm-pvm: loaded (native=1)\n SUBSYSTEM=virtual\n DEVICE=+misc:kvm\n", l));
    EXPECT_EQ(l.level, 6);
    EXPECT_EQ(l.usec, 5140900);
    EXPECT_EQ(l.text, "kvm-pvm: loaded (native=1)");
    // Continuation flag and extra fields after the third are allowed.
    ASSERT_TRUE(parse_kmsg_record("3,12,9126530,c,more;kvm: support for 'kvm_intel' disabled by bios\n", l));
    EXPECT_EQ(l.level, 3);
}

TEST(KernelLogParse, UserSpaceMessagesAreNotTheKernelsWords) {
    KernelLogLine l;
    // Facility 1 (user): what `echo ... > /dev/kmsg` writes. Never evidence.
    EXPECT_FALSE(parse_kmsg_record("14,340,5140999,-;kvm: disabled by bios\n", l));
    EXPECT_FALSE(parse_kmsg_record("garbage without a separator", l));
    EXPECT_FALSE(parse_kmsg_record("x,1,2,-;text", l));
    EXPECT_FALSE(parse_kmsg_record("6,1;text", l));
}

TEST(KernelLogParse, SyslogTextKeepsOnlyKernelVirtualizationLines) {
    KernelLog log;
    parse_syslog_text("<6>[    0.000000] Hypervisor detected: KVM\n"
                      "<6>[    0.000008] clocksource: kvm-clock: mask: 0xffffffffffffffff\n"
                      "<6>[    0.100000] Booting paravirtualized kernel on KVM\n"
                      "<4>[    1.500000] random: crng init done\n"
                      "<3>[    9.126530] kvm: support for 'kvm_intel' disabled by bios\n"
                      "<14>[   10.000000] kvm: forged by user space\n"
                      "[   11.000000] AMD-Vi: Found IOMMU cap 0x40\n",
                      log, KernelLogLimits{});
    ASSERT_EQ(log.lines.size(), 4u) << nlohmann::json(log).dump(1);
    EXPECT_EQ(log.lines[0].text, "Hypervisor detected: KVM");
    EXPECT_EQ(log.lines[0].usec, 0);
    EXPECT_EQ(log.lines[2].text, "kvm: support for 'kvm_intel' disabled by bios");
    EXPECT_EQ(log.lines[2].level, 3);
    EXPECT_EQ(log.lines[2].usec, 9126530);
    EXPECT_EQ(log.lines[3].text, "AMD-Vi: Found IOMMU cap 0x40");
    EXPECT_EQ(log.lines[3].level, -1);
    EXPECT_EQ(log.records, 7u);
}

TEST(KernelLogParse, BoundsCutTheReadAndSayWhere) {
    KernelLog log;
    KernelLogLimits lim;
    lim.max_lines = 1;
    parse_syslog_text("<3>[1.0] kvm: a\n<3>[2.0] kvm: b\n", log, lim);
    EXPECT_EQ(log.lines.size(), 1u);
    EXPECT_TRUE(log.truncated);
    KernelLog log2;
    lim = {};
    lim.max_records = 1;
    parse_syslog_text("<3>[1.0] kvm: a\n<3>[2.0] kvm: b\n", log2, lim);
    EXPECT_TRUE(log2.truncated);
}

TEST(KernelLogParse, FilterKeepsCausesAndDropsGuestChatter) {
    for (const char* keep : {"kvm: no hardware support for 'kvm_amd'", "kvm_amd: SVM not supported by CPU 0, not amd or hygon",
                             "kvm-pvm: this kernel is itself a kvm-pvm guest; not binding", "Hypervisor detected: Microsoft Hyper-V",
                             "x86/cpu: VMX (outside TXT) disabled by BIOS", "DMAR: IOMMU enabled", "ccp 0000:01:00.5: SEV API:1.55 build:21",
                             "virt/tdx: module initialized"})
        EXPECT_TRUE(is_virtualization_log_line(keep)) << keep;
    for (const char* drop : {"kvm-clock: Using msrs 4b564d01 and 4b564d00", "kvm-guest: PV spinlocks enabled",
                             "clocksource: kvm-clock: mask: 0xffffffffffffffff", "random: crng init done", "EXT4-fs (vda): mounted"})
        EXPECT_FALSE(is_virtualization_log_line(drop)) << drop;
}

// The live reader agrees with util-linux's dmesg on this machine's log:
// every line it keeps is in dmesg's output, and every kernel line of dmesg's
// that passes the filter and predates our read is among ours.
TEST(KernelLogLive, AgreesWithDmesg) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: kernel.dmesg_restrict may hide the log";
    if (::access("/usr/bin/dmesg", X_OK) != 0) GTEST_SKIP() << "util-linux's dmesg is not installed";
    const KernelLog ours = read_kernel_log();
    ASSERT_TRUE(ours.error.empty()) << ours.error;
    EXPECT_GT(ours.records, 0u);
    const auto r = kvmready::testsupport::run_captured({"/usr/bin/dmesg", "--raw"}, 10000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    KernelLog theirs;
    KernelLogLimits lim;
    lim.max_lines = 100000;
    parse_syslog_text(r.out, theirs, lim);
    std::set<std::pair<int64_t, std::string>> t, o;
    for (const auto& l : theirs.lines) t.insert({l.usec, l.text});
    int64_t last = -1;
    for (const auto& l : ours.lines) {
        o.insert({l.usec, l.text});
        last = std::max(last, l.usec);
        EXPECT_TRUE(t.count({l.usec, l.text})) << "not in dmesg: [" << l.usec << "] " << l.text;
    }
    if (ours.lost || ours.truncated) return;  // the ring buffer moved under us: only the first half holds
    for (const auto& [usec, text] : t)
        if (usec <= last) EXPECT_TRUE(o.count({usec, text})) << "dmesg has, we lack: [" << usec << "] " << text;
}

// kernel.dmesg_restrict=1 (Debian's default) keeps the log from users
// without CAP_SYSLOG: the reader says so instead of returning nothing.
TEST(KernelLogLive, RestrictedLogIsReportedNotGuessed) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
    std::ifstream r("/proc/sys/kernel/dmesg_restrict");
    int restrict_ = 0;
    if (!(r >> restrict_) || restrict_ != 1) GTEST_SKIP() << "kernel.dmesg_restrict is not 1 on this machine";
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        if (::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) _exit(2);
        const std::string j = nlohmann::json(read_kernel_log()).dump();
        (void)!::write(fds[1], j.data(), j.size());
        _exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    const auto log = nlohmann::json::parse(out).get<KernelLog>();
    EXPECT_EQ(log.error_code, EPERM) << out;
    EXPECT_NE(log.error.find("dmesg_restrict"), std::string::npos) << out;
    EXPECT_TRUE(log.lines.empty());
}

}  // namespace
