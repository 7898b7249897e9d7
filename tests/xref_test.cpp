// Every cross-reference between checks and fixes holds: a fix id a check
// names exists and repairs that check; a check id a fix names exists. Two
// views: the source (every literal fix id handed to a remediation, wherever
// it sits) and what users actually see (every finding over every fixture
// host tree, judged in process).
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "core/check.hpp"
#include "core/ids.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/host.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path kSource = KVMREADY_SOURCE_DIR;

bool repairs(const kvmready::fix::FixSpec& f, const std::string& check) {
    for (const char* id : f.repairs)
        if (check == id) return true;
    return false;
}

// A fix names the checks it repairs by their typed constants (ids::kvm_access),
// never as free text: a misspelt id does not compile, and the constants are
// held to the check registry below (every constant registered).
static_assert(std::is_same_v<decltype(kvmready::fix::FixSpec::repairs), std::vector<kvmready::CheckId>>);

TEST(CrossReference, EveryCheckAFixRepairsExists) {
    for (const auto& f : kvmready::fix::registry()) {
        EXPECT_FALSE(f.repairs.empty()) << f.id << " repairs no check";
        for (const char* id : f.repairs) EXPECT_NE(kvmready::find_check(id), nullptr) << f.id << " names unknown check " << id;
    }
}

// The identifier ids.hpp gives an id: "kvm.qemu-user-access" -> kvm_qemu_user_access.
std::string constant_name(std::string id) {
    for (char& c : id)
        if (c == '.' || c == '-') c = '_';
    return id;
}

// Every typed constant names a registered check or fix, and every registered
// check and fix has its constant (so checks can name any of them by type).
TEST(CrossReference, EveryIdConstantIsRegisteredAndEveryIdHasOne) {
    std::set<std::string> checks, fixes;
    for (const auto id : kvmready::ids::kAllChecks) {
        EXPECT_NE(kvmready::find_check(id.text), nullptr) << "ids.hpp names check " << id.text << ", which is not registered";
        EXPECT_TRUE(checks.insert(id.text).second) << "ids.hpp lists check " << id.text << " twice";
    }
    for (const auto id : kvmready::ids::kAllFixes) {
        EXPECT_NE(kvmready::fix::find_fix(id.text), nullptr) << "ids.hpp names fix " << id.text << ", which is not registered";
        EXPECT_TRUE(fixes.insert(id.text).second) << "ids.hpp lists fix " << id.text << " twice";
    }
    for (const auto& c : kvmready::registry()) EXPECT_EQ(checks.count(c.id), 1u) << "check " << c.id << " has no constant in ids.hpp";
    for (const auto& f : kvmready::fix::registry()) EXPECT_EQ(fixes.count(f.id), 1u) << "fix " << f.id << " has no constant in ids.hpp";
    EXPECT_EQ(checks.size(), kvmready::registry().size());
    EXPECT_EQ(fixes.size(), kvmready::fix::registry().size());
}

// The types keep the two apart: a fix id is not a check id and back.
static_assert(!std::is_convertible_v<kvmready::FixId, kvmready::CheckId>);
static_assert(!std::is_convertible_v<kvmready::CheckId, kvmready::FixId>);
static_assert(!std::is_convertible_v<kvmready::FixId, const char*>);
static_assert(!std::is_convertible_v<kvmready::FixId, std::string>);
static_assert(!std::is_convertible_v<const char*, kvmready::FixId>);
static_assert(std::is_convertible_v<kvmready::CheckId, const char*>);

// remedy(out, TEXT, {COMMANDS}, "fix.id", "automatic|confirm|manual", ROOT):
// the fix id is the string literal right before the applicability, or (in
// checks/) a typed constant ids::fix::NAME.
TEST(CrossReference, EveryFixIdInTheSourceExists) {
    std::set<std::string> constants;
    for (const auto id : kvmready::ids::kAllFixes)
        if (kvmready::fix::find_fix(id.text)) constants.insert(constant_name(id.text));
    const std::regex typed(R"re(ids::fix::([a-z0-9_]+))re");
    const std::regex lit(R"re("([a-z0-9]+\.[a-z0-9.-]+)",\s*"(automatic|confirm|manual)")re");
    // Fix ids chosen at run time sit in variables assigned from literals.
    const std::regex var(R"re(fix_id\s*=\s*[^;]*?"([a-z0-9]+\.[a-z0-9.-]+)")re");
    int seen = 0;
    for (const char* dir : {"checks", "src", "fixes"}) {
        for (const auto& e : fs::recursive_directory_iterator(kSource / dir)) {
            if (e.path().extension() != ".cpp") continue;
            std::ifstream in(e.path());
            std::stringstream ss;
            ss << in.rdbuf();
            const std::string text = ss.str();
            for (const auto* re : {&lit, &var})
                for (auto it = std::sregex_iterator(text.begin(), text.end(), *re); it != std::sregex_iterator(); ++it) {
                    ++seen;
                    const std::string id = (*it)[1];
                    EXPECT_NE(kvmready::fix::find_fix(id), nullptr)
                        << e.path().lexically_relative(kSource).string() << " names fix " << id << ", which does not exist";
                }
            for (auto it = std::sregex_iterator(text.begin(), text.end(), typed); it != std::sregex_iterator(); ++it) {
                const std::string name = (*it)[1];
                if (name == "none") continue;
                ++seen;
                EXPECT_EQ(constants.count(name), 1u)
                    << e.path().lexically_relative(kSource).string() << " names fix ids::fix::" << name << ", which is not registered";
            }
        }
    }
    EXPECT_GT(seen, 10) << "the patterns no longer find the remediations' fix ids";
}

// Every finding a user can see on a recorded host: its fix exists and
// repairs that very check, and it offers the fix only with a real
// applicability (a manual remediation names no fix).
TEST(CrossReference, EveryFixtureFindingNamesARealFixForItself) {
    int trees = 0, with_fix = 0;
    for (const auto& e : fs::directory_iterator(KVMREADY_FIXTURES_DIR)) {
        if (!fs::exists(e.path() / ".kvmready/host.json")) continue;
        std::unique_ptr<kvmready::host::Host> h;
        kvmready::Facts facts;
        try {
            h = kvmready::host::make_rooted_host(e.path().string());
            facts = kvmready::probe(*h, kvmready::ProbeOptions{});
        } catch (const std::exception&) {
            continue;  // the corrupt-* trees: refused before judging, on purpose
        }
        ++trees;
        const auto report = kvmready::run_checks(facts, {});
        for (const auto& f : report.findings) {
            const auto& rem = f.remediation;
            if (rem.fix_id.empty()) continue;
            ++with_fix;
            const auto* fix = kvmready::fix::find_fix(rem.fix_id);
            ASSERT_NE(fix, nullptr) << e.path().filename() << ": " << f.id << " names fix " << rem.fix_id << ", which does not exist";
            EXPECT_TRUE(repairs(*fix, f.id)) << e.path().filename() << ": " << f.id << " names fix " << rem.fix_id
                                             << ", which does not list it among the checks it repairs";
            EXPECT_NE(rem.applicability, "manual") << e.path().filename() << ": " << f.id << " names fix " << rem.fix_id
                                                   << " but calls it manual";
        }
    }
    EXPECT_GT(trees, 20);
    EXPECT_GT(with_fix, 5);
}

}  // namespace
