// The runner's contract: a crashing check becomes an `error` finding and the
// rest still run; dependencies skip; verdict rules by level.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"

using namespace kvmready;

namespace {

CheckSpec spec(const char* id, Level level, Status s, std::vector<const char*> deps = {}) {
    return CheckSpec{id, id, level, std::move(deps), "", "", "",
                     [s](const Facts&, const Results&, Finding& f) {
                         f.status = s;
                         f.message = std::string("said ") + to_string(s);
                         if (s != Status::Pass) f.remediation.commands = {std::string("fix ") + f.id};
                     }};
}

Status status_of(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return f.status;
    return Status::Error;
}

}  // namespace

TEST(Runner, ThrowingCheckBecomesErrorAndOthersStillRun) {
    std::vector<CheckSpec> checks = {
        CheckSpec{"a.boom", "boom", Level::Required, {}, "", "", "",
                  [](const Facts&, const Results&, Finding&) { throw std::runtime_error("kaboom"); }},
        spec("a.after", Level::Required, Status::Pass)};
    const Report r = run_checks(Facts{}, {}, checks);
    ASSERT_EQ(r.findings.size(), 2u);
    EXPECT_EQ(r.findings[0].status, Status::Error);
    EXPECT_NE(r.findings[0].message.find("kaboom"), std::string::npos);
    EXPECT_EQ(r.findings[1].status, Status::Pass);
    EXPECT_EQ(r.verdict, Verdict::Undetermined);
    EXPECT_EQ(exit_code_for(r, false), 3);
}

TEST(Runner, FailedDependencySkipsAndVerdictIsNotReady) {
    std::vector<CheckSpec> checks = {spec("k.dev", Level::Required, Status::Fail),
                                     spec("k.api", Level::Required, Status::Pass, {"k.dev"})};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(status_of(r, "k.api"), Status::Skip);
    EXPECT_NE(r.findings[1].message.find("needs k.dev"), std::string::npos);
    EXPECT_EQ(r.verdict, Verdict::NotReady);
    EXPECT_EQ(r.next_step, "fix k.dev");
    EXPECT_EQ(exit_code_for(r, false), 1);
}

TEST(Runner, RecommendedWarningGivesReadyWithWarningsAndStrictFails) {
    std::vector<CheckSpec> checks = {spec("k.api", Level::Required, Status::Pass),
                                     spec("n.net", Level::Recommended, Status::Warn)};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(r.verdict, Verdict::ReadyWithWarnings);
    EXPECT_EQ(exit_code_for(r, false), 0);
    EXPECT_EQ(exit_code_for(r, true), 1);
}

TEST(Runner, RecommendedFailureDoesNotMakeHostNotReady) {
    std::vector<CheckSpec> checks = {spec("k.api", Level::Required, Status::Pass),
                                     spec("n.warn", Level::Recommended, Status::Warn),
                                     spec("n.net", Level::Recommended, Status::Fail)};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(r.verdict, Verdict::ReadyWithWarnings);
    // The failure is named in the verdict and its fix is the next step, ahead of the earlier warning.
    EXPECT_NE(r.verdict_text.find("1 recommended check failed (n.net)"), std::string::npos) << r.verdict_text;
    EXPECT_NE(r.verdict_text.find("1 warning"), std::string::npos) << r.verdict_text;
    EXPECT_EQ(r.next_step, "fix n.net");
}

TEST(Runner, ReadyVerdictSaysWhatCouldNotBeJudged) {
    std::vector<CheckSpec> checks = {spec("k.api", Level::Required, Status::Pass),
                                     spec("m.mem", Level::Recommended, Status::Unknown),
                                     spec("o.opt", Level::Optional, Status::Unknown)};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(r.verdict, Verdict::Ready);
    EXPECT_NE(r.verdict_text.find("1 recommended check could not be judged"), std::string::npos) << r.verdict_text;
}

TEST(Registry, SelectedChecksProbeOnlyTheAreasTheyAndTheirDependenciesRead) {
    EXPECT_EQ(probe_areas_for({}), kAreaAll);
    EXPECT_EQ(probe_areas_for({"cpu", "host", "kvm.api"}), 0u) << "the core needs no libvirt, network or system probe";
    // kvm.qemu-user-access is in category kvm but reads libvirt's qemu.conf.
    EXPECT_EQ(probe_areas_for({"kvm"}), unsigned{kAreaVirt});
    EXPECT_EQ(probe_areas_for({"net"}) & (kAreaNet | kAreaVirt), unsigned{kAreaNet | kAreaVirt}) << "net judges libvirt's NAT networks";
    EXPECT_EQ(probe_areas_for({"memory.hugepages"}), unsigned{kAreaSystem});
    // storage.pool depends on libvirt.daemon: both in the virt area.
    EXPECT_EQ(probe_areas_for({"storage.pool"}), unsigned{kAreaVirt});
    for (const auto& c : registry())
        for (const char* dep : c.depends_on)
            EXPECT_EQ(probe_areas_for({c.id}) & find_check(dep)->areas, find_check(dep)->areas) << c.id << " -> " << dep;
}

TEST(Runner, OptionalOutcomesNeverChangeTheVerdict) {
    std::vector<CheckSpec> checks = {spec("k.api", Level::Required, Status::Pass),
                                     spec("o.nested", Level::Optional, Status::Warn),
                                     spec("o.other", Level::Optional, Status::Unknown)};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(r.verdict, Verdict::Ready);
    EXPECT_EQ(r.summary.warn, 1);
    EXPECT_EQ(r.summary.unknown, 1);
}

TEST(Runner, RequiredUnknownIsUndetermined) {
    std::vector<CheckSpec> checks = {spec("k.api", Level::Required, Status::Unknown)};
    EXPECT_EQ(run_checks(Facts{}, {}, checks).verdict, Verdict::Undetermined);
}

TEST(Runner, SelectorsPickByIdAndCategoryAndRejectUnknown) {
    std::vector<CheckSpec> checks = {spec("cpu.a", Level::Required, Status::Pass), spec("kvm.b", Level::Required, Status::Pass),
                                     spec("kvm.c", Level::Required, Status::Pass)};
    const Report r = run_checks(Facts{}, {"kvm"}, checks);
    ASSERT_EQ(r.findings.size(), 2u);
    EXPECT_EQ(r.findings[0].id, "kvm.b");
    const Report one = run_checks(Facts{}, {"cpu.a"}, checks);
    ASSERT_EQ(one.findings.size(), 1u);
    EXPECT_THROW(run_checks(Facts{}, {"nosuch"}, checks), UsageError);
}

TEST(Registry, IdsAreUniqueKebabCaseAndDependenciesPrecede) {
    std::set<std::string> seen;
    for (const auto& c : registry()) {
        const std::string id = c.id;
        EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
        EXPECT_EQ(std::count(id.begin(), id.end(), '.'), 1) << id;
        for (char ch : id) EXPECT_TRUE(std::islower(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-') << id;
        for (const char* d : c.depends_on) EXPECT_TRUE(seen.count(d)) << id << " depends on later/unknown " << d;
        EXPECT_GT(std::string(c.reads).size(), 20u) << id;
        EXPECT_GT(std::string(c.why).size(), 20u) << id;
    }
}

TEST(Runner, SkippedDependencyPassesItsReasonOn) {
    std::vector<CheckSpec> checks = {
        CheckSpec{"c.base", "base", Level::Required, {}, "", "", "",
                  [](const Facts&, const Results&, Finding& f) {
                      f.status = Status::Skip;
                      f.message = "no VT-x to look at";
                  }},
        spec("c.next", Level::Recommended, Status::Pass, {"c.base"})};
    const Report r = run_checks(Facts{}, {}, checks);
    EXPECT_EQ(status_of(r, "c.next"), Status::Skip);
    EXPECT_EQ(r.findings[1].message, "no VT-x to look at");
}

// Derived facts (KVM state, outer hypervisor, container) are computed once
// per run, before the first check, from the run's own Facts: every check sees
// the same object, not a derivation of its own.
TEST(Runner, DerivedFactsAreComputedOncePerRunAndSharedByEveryCheck) {
    Facts facts;
    ModuleInfo kvm;
    kvm.name = "kvm";
    ModuleInfo intel;
    intel.name = "kvm_intel";
    facts.modules.present = {kvm, intel};
    facts.hypervisor.container_env = "podman";
    std::vector<const Derived*> seen;
    std::vector<bool> from_these_facts;  // KvmState points into the run's Facts
    const auto record = [&](const Facts&, const Results& r, Finding& f) {
        seen.push_back(&r.derived());
        from_these_facts.push_back(r.derived().kvm.core == &facts.modules.present[0] &&
                                   r.derived().kvm.flavour == &facts.modules.present[1] &&
                                   r.derived().container.runtime == "podman");
        f.status = Status::Pass;
        f.message = "recorded";
    };
    const std::vector<CheckSpec> checks = {CheckSpec{"a.one", "one", Level::Required, {}, "", "", "", record},
                                           CheckSpec{"a.two", "two", Level::Required, {}, "", "", "", record}};
    (void)run_checks(facts, {}, checks);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], seen[1]);
    EXPECT_EQ(from_these_facts, std::vector<bool>({true, true}));
}
