// `kvmready watch` in a real KVM host that changes: Debian's cloud kernel
// under QEMU TCG with `-cpu EPYC` (TCG emulates SVM). watch starts with no
// kvm module loaded; once its first outputs exist, the guest's init loads
// kvm and kvm_amd (tests/guest/init.c, kvmready.late_wait=), waits for the
// output file to be replaced and SIGTERMs watch. The module and /dev/kvm
// uevents must reach watch, re-judge KVM, rewrite the outputs and log the
// verdict changes with their cause.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "support/guest_vm.hpp"

namespace kvmready::testsupport {
namespace {

// kvm_amd and what it needs, in load order, as paths inside the guest
// (mkinitramfs.sh decompresses .ko.xz/.zst/.gz). modules.dep lists a
// module's whole dependency closure, the ones to load first last.
std::vector<std::string> load_order(const std::filesystem::path& moddir, const std::string& name) {
    std::ifstream in(moddir / "modules.dep");
    const std::string rel = "/lib/modules/" + moddir.filename().string() + "/";
    auto guest = [&](std::string p) {
        for (const char* ext : {".xz", ".zst", ".gz"})
            if (p.size() > std::strlen(ext) && p.compare(p.size() - std::strlen(ext), std::string::npos, ext) == 0) p.resize(p.size() - std::strlen(ext));
        return rel + p;
    };
    auto mod_name = [](const std::string& p) {
        std::string n = p.substr(p.rfind('/') + 1);
        n = n.substr(0, n.find(".ko"));
        std::replace(n.begin(), n.end(), '-', '_');
        return n;
    };
    for (std::string line; std::getline(in, line);) {
        const std::string path = line.substr(0, line.find(':'));
        if (mod_name(path) != name) continue;
        std::istringstream deps(line.substr(line.find(':') + 1));
        std::vector<std::string> order;
        for (std::string d; deps >> d;) order.insert(order.begin(), guest(d));
        order.push_back(guest(path));
        return order;
    }
    return {};
}

class WatchGuest : public GuestVmTest {};

TEST_F(WatchGuest, KvmAmdLoadedLaterChangesTheOutputsAndIsLogged) {
    const auto order = load_order(modules_dir_, "kvm_amd");
    ASSERT_FALSE(order.empty()) << "kvm_amd is not in " << modules_dir_ / "modules.dep";
    const auto late = tmp_ / "modules.late";
    {
        std::ofstream out(late);
        for (const auto& p : order) out << p << "\n";
    }
    GuestSpec s;
    s.cpu = "EPYC";
    s.pack_only = {"kvm_amd"};
    s.adds = {late.string() + "=/modules.late"};
    s.late_wait = "/tmp/kvmready.json";
    s.commands = {{"watch", "--output", "json:/tmp/kvmready.json", "--output", "prometheus:/tmp/kvmready.prom", "--interval", "3600"}};
    const GuestRun g = boot(s);
    ASSERT_EQ(g.commands.size(), 1u);
    report_text_ = g.stdout_text + g.stderr_text;

    const ModuleLoad* amd = g.module("kvm_amd");
    ASSERT_NE(amd, nullptr) << "init did not load kvm_amd";
    ASSERT_EQ(amd->result, "ok") << "kvm_amd refused: " << amd->errno_name;

    std::smatch m;
    static const std::regex late_re(R"(KVMREADY-GUEST-LATE path=\S+ result=(\S+) first_ms=(\d+) last_ms=(\d+))");
    ASSERT_TRUE(std::regex_search(g.console, m, late_re)) << "init reported no late module result";
    EXPECT_EQ(m[1].str(), "changed") << "the output file was not rewritten after kvm_amd loaded";
    const long first_ms = std::stol(m[2].str()), last_ms = std::stol(m[3].str());
    std::cout << "[ watch    ] outputs rewritten " << first_ms << " ms after kvm_amd loaded (last rewrite at " << last_ms
              << " ms; TCG-emulated guest)" << std::endl;
    // A second in the issue's terms, on real hardware; the guest's CPU is
    // emulated (tens of times slower), hence the margin.
    EXPECT_LT(first_ms, 10000);

    std::cout << "[ watch    ] changes logged in the guest:\n" << g.stdout_text << std::flush;
    EXPECT_EQ(g.exit_code, std::optional<int>(0)) << "watch must end cleanly on SIGTERM";
    EXPECT_NE(g.stderr_text.find("stopped by SIGTERM"), std::string::npos);
    // Each verdict change with its cause: the module's and /dev/kvm's uevents.
    // kvm and kvm_amd load one after the other; watch may see them in one
    // batch (fail -> pass) or two (fail -> warn -> pass): both are right.
    static const std::regex module_from_re(R"(kvm\.module: fail -> \w+ after [^\n]*module add kvm)");
    EXPECT_TRUE(std::regex_search(g.stdout_text, module_from_re)) << g.stdout_text;
    static const std::regex module_re(R"(kvm\.module: \w+ -> pass after [^\n]*module add kvm_amd)");
    EXPECT_TRUE(std::regex_search(g.stdout_text, module_re)) << g.stdout_text;
    static const std::regex api_re(R"(kvm\.api: \w+ -> pass after [^\n]*(module add kvm|misc add kvm))");
    EXPECT_TRUE(std::regex_search(g.stdout_text, api_re)) << g.stdout_text;
    static const std::regex verdict_re(R"(verdict: not_ready -> \w+ after )");
    EXPECT_TRUE(std::regex_search(g.stdout_text, verdict_re)) << g.stdout_text;
}

}  // namespace
}  // namespace kvmready::testsupport
