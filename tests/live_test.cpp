// Live tests on the real machine: they assert invariants that hold on any
// host, not this host's values.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "checks/common.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "host/process.hpp"
#include "output/output.hpp"

using namespace kvmready;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

const Finding& finding(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return f;
    throw std::runtime_error("no finding " + id);
}

bool dev_kvm_opens() {
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

}  // namespace

TEST(Live, CpuidVendorMatchesProcCpuinfo) {
    auto h = host::make_live_host();
    const auto d = cpuid::decode(h->cpuid());
    CpuFacts c;
    parse_cpuinfo(slurp("/proc/cpuinfo"), c);
    ASSERT_TRUE(c.cpuinfo_read);
    EXPECT_EQ(d.vendor, c.cpuinfo_vendor);
    // The kernel shows vmx/svm only if CPUID has them (it may hide, never invent).
    const auto& fl = c.cpuinfo_flags;
    if (std::find(fl.begin(), fl.end(), "vmx") != fl.end()) EXPECT_TRUE(d.vmx);
    if (std::find(fl.begin(), fl.end(), "svm") != fl.end()) EXPECT_TRUE(d.svm);
    EXPECT_EQ(std::find(fl.begin(), fl.end(), "hypervisor") != fl.end(), d.hypervisor);
}

TEST(Live, KvmApiPassesWhenDevKvmOpens) {
    if (!dev_kvm_opens()) GTEST_SKIP() << "/dev/kvm cannot be opened read-write here";
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const Report r = run_checks(f, {});
    const Finding& api = finding(r, "kvm.api");
    EXPECT_EQ(api.status, Status::Pass) << api.message;
    EXPECT_EQ(f.kvm.api_version, 12);
    EXPECT_EQ(f.kvm.guest_output, "KVM");
    EXPECT_GT(f.kvm.capabilities.at("max_vcpus"), 0);
    EXPECT_EQ(finding(r, "kvm.device").status, Status::Pass);
    EXPECT_EQ(finding(r, "kvm.access").status, Status::Pass);
    // KVM works, so the verdict can never be "not ready" or "undetermined".
    EXPECT_TRUE(r.verdict == Verdict::Ready || r.verdict == Verdict::ReadyWithWarnings) << r.verdict_text;
    // The module that provides /dev/kvm must be known by name.
    ASSERT_NE(checks::flavour_module(f), nullptr);
    EXPECT_NE(api.message.find(checks::flavour_module(f)->name), std::string::npos);
}

TEST(Live, CpuFlagsDoNotOverruleAWorkingKvm) {
    if (!dev_kvm_opens()) GTEST_SKIP() << "/dev/kvm cannot be opened read-write here";
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const auto d = cpuid::decode(f.cpu.dump);
    const Report r = run_checks(f, {"cpu.virt-extensions"});
    const Status s = finding(r, "cpu.virt-extensions").status;
    if (d.vmx || d.svm) EXPECT_EQ(s, Status::Pass);
    else EXPECT_EQ(s, Status::Warn) << "a host without VT-x/AMD-V whose KVM works must warn, not fail";
}

TEST(Live, UnprivilegedUserIsJudgedAndReallyDenied) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    struct stat st {};
    if (::stat("/dev/kvm", &st) < 0) GTEST_SKIP() << "no /dev/kvm";
    if ((st.st_mode & 06) == 06) GTEST_SKIP() << "/dev/kvm is world-writable here; no denial to observe";
    // Judge `nobody` from the permissions, then let a child running as
    // nobody try the real open: both must agree.
    auto h = host::make_live_host();
    ProbeOptions o;
    o.request.user = "nobody";
    o.kvm_api = false;
    const Facts f = probe(*h, o);
    ASSERT_TRUE(f.access.user.has_value());
    const Report r = run_checks(f, {"kvm.access"});
    const Status judged = finding(r, "kvm.access").status;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (setgroups(0, nullptr) != 0 || setgid(f.access.user->gid) != 0 || setuid(f.access.user->uid) != 0) _exit(2);
        int fd = ::open("/dev/kvm", O_RDWR);
        _exit(fd >= 0 ? 0 : 1);
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    ASSERT_TRUE(WIFEXITED(wst));
    ASSERT_NE(WEXITSTATUS(wst), 2) << "could not drop privileges";
    const bool really_opened = WEXITSTATUS(wst) == 0;
    EXPECT_EQ(judged == Status::Pass, really_opened);
}

TEST(Live, FactsRoundTripThroughJsonGiveTheSameFindings) {
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const Facts back = facts_from_json(nlohmann::json::parse(facts_to_json(f).dump()));
    const Report a = run_checks(f, {});
    const Report b = run_checks(back, {});
    ASSERT_EQ(a.findings.size(), b.findings.size());
    for (size_t i = 0; i < a.findings.size(); ++i) {
        EXPECT_EQ(a.findings[i].status, b.findings[i].status) << a.findings[i].id;
        EXPECT_EQ(a.findings[i].message, b.findings[i].message) << a.findings[i].id;
    }
}

// Run as a user who cannot open /dev/kvm, the tool cannot do the ioctl test.
// On a host whose KVM needs no VT-x (kvm_pvm) the missing CPU flag must not be
// blamed: the verdict names the access problem.
TEST(Live, UnprivilegedRunBlamesAccessNotTheCpuFlag) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run the tool as nobody";
    struct stat st {};
    if (::stat("/dev/kvm", &st) < 0) GTEST_SKIP() << "no /dev/kvm";
    if ((st.st_mode & 06) == 06) GTEST_SKIP() << "/dev/kvm is world-writable here; nobody can use it";
    auto h = host::make_live_host();
    ProbeOptions o;
    o.kvm_api = false;
    const Facts f = probe(*h, o);
    const host::RunResult run = host::run_process({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", KVMREADY_BINARY,
                                                   "check", "--json", "cpu.virt-extensions", "kvm.access", "kvm.api"},
                                                  20000);
    ASSERT_TRUE(run.started) << run.error;
    const std::string& out = run.out;
    const auto doc = nlohmann::json::parse(out, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << out;
    // A selection: its verdict speaks for the selected checks only.
    EXPECT_EQ(doc["verdict"], "failed") << out;
    std::map<std::string, std::string> st_of;
    for (const auto& c : doc["checks"]) st_of[c["id"]] = c["status"];
    EXPECT_EQ(st_of["kvm.access"], "fail");
    EXPECT_NE(doc.value("verdict_text", "").find("cannot open /dev/kvm"), std::string::npos) << doc.dump(2);
    if (checks::is_pvm(derive(f))) EXPECT_EQ(st_of["cpu.virt-extensions"], "warn") << "kvm_pvm needs no VT-x: the flag is not the cause";
}
