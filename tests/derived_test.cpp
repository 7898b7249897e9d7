// Derived facts (core/derived.hpp) are what the checks that need them see:
// the container host.hypervisor reports is the one kvm.device and net.*
// act on, on every recorded host tree; and each container signal counts
// (or, /.dockerenv alone, does not).
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/derived.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "host/host.hpp"

namespace {

using namespace kvmready;
namespace fs = std::filesystem;

TEST(Derived, ContainerSignals) {
    HypervisorFacts h;
    EXPECT_FALSE(container_of(h).detected());
    h.dockerenv_file = true;
    EXPECT_FALSE(container_of(h).detected()) << "/.dockerenv alone proves nothing";
    EXPECT_TRUE(container_of(h).dockerenv_only);
    h.root_fstype = "overlay";
    EXPECT_EQ(container_of(h).runtime, "docker");
    EXPECT_FALSE(container_of(h).dockerenv_only);

    HypervisorFacts p;
    p.pid1_cgroup = "0::/system.slice/libpod-0123.scope";
    EXPECT_EQ(container_of(p).runtime, "podman");
    EXPECT_EQ(container_of(p).basis, "PID 1's cgroup path");
    p.container_env = "lxc";
    EXPECT_EQ(container_of(p).runtime, "lxc") << "container= in PID 1's environment is the strongest signal";
}

TEST(Derived, HostHypervisorReportsTheContainerTheChecksActOn) {
    int trees = 0, containers = 0;
    for (const auto& e : fs::directory_iterator(KVMREADY_FIXTURES_DIR)) {
        if (!fs::exists(e.path() / ".kvmready/host.json")) continue;
        Facts facts;
        try {
            auto h = host::make_rooted_host(e.path().string());
            facts = probe(*h, ProbeOptions{});
        } catch (const std::exception&) {
            continue;  // the corrupt-* trees
        }
        ++trees;
        const Derived d = derive(facts);
        const Report r = run_checks(facts, {"host.hypervisor"});
        ASSERT_EQ(r.findings.size(), 1u);
        const auto& ev = r.findings[0].evidence;
        if (d.container.detected()) {
            ++containers;
            EXPECT_EQ(ev.value("container", std::string()), d.container.runtime) << e.path().filename();
        } else {
            EXPECT_TRUE(ev.at("container").is_null()) << e.path().filename();
        }
    }
    EXPECT_GT(trees, 20);
    EXPECT_GE(containers, 1) << "the container fixture should be judged a container";
}

}  // namespace
