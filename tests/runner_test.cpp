// The runner's contract: a crashing check becomes an `error` finding and the
// rest still run; dependencies skip; verdict rules by level.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "core/errors.hpp"
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
                                     spec("n.net", Level::Recommended, Status::Fail)};
    EXPECT_EQ(run_checks(Facts{}, {}, checks).verdict, Verdict::ReadyWithWarnings);
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
