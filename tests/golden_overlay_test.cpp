// The golden overlays of tests/golden (support/golden_overlay.hpp): an
// overlay holds only what differs from its base, composes back to the output
// exactly, and does not change when a check is added that prints on the case
// what it prints on the base. The fixture cases (fixtures_test.cpp) use it on
// the real outputs; these tests hold its rules on small outputs laid out as
// `kvmready check` lays them out.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/golden_overlay.hpp"

namespace {

namespace golden = kvmready::testsupport::golden;
using Json = nlohmann::ordered_json;

struct Chk {
    std::string id, status, message;
    std::vector<std::string> remediation = {};  // lines below the status line, as printed
};

std::string mark(const std::string& status) {
    if (status == "pass") return "PASS";
    if (status == "warn") return "WARN";
    if (status == "fail") return "FAIL";
    if (status == "skip") return "SKIP";
    if (status == "error") return "ERR!";
    return "UNKN";
}

// Text and JSON as `check --color=never` and `check --json` print them.
golden::Outputs outputs(const std::string& host, const std::vector<Chk>& checks, const std::string& verdict) {
    size_t width = 0;
    for (const auto& c : checks) width = std::max(width, c.id.size());
    std::string text = "kvmready 0.1.0 · " + host + " · Linux 6.1.0 · RECORDED HOST (root:" + host + "), not this machine\n";
    std::string category;
    Json j = {{"schema_version", 1}, {"host", {{"source", "root:" + host}}}, {"verdict", verdict},
              {"summary", {{"pass", 0}, {"warn", 0}, {"fail", 0}, {"skip", 0}, {"unknown", 0}, {"error", 0}, {"total", 0}}},
              {"checks", Json::array()}};
    int warnings = 0, passed = 0, failed = 0;
    for (const auto& c : checks) {
        const std::string cat = c.id.substr(0, c.id.find('.'));
        if (cat != category) {
            category = cat;
            std::string upper = cat;
            for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            text += "\n" + upper + "\n";
        }
        text += "  " + mark(c.status) + " " + c.id + std::string(width - c.id.size(), ' ') + "  " + c.message + "\n";
        for (const auto& l : c.remediation) text += l + "\n";
        j["checks"].push_back({{"id", c.id}, {"status", c.status}, {"message", c.message}, {"evidence", {{"host", host}}}});
        j["summary"][c.status] = j["summary"][c.status].get<int>() + 1;
        passed += c.status == "pass";
        warnings += c.status == "warn";
        failed += c.status == "fail";
    }
    j["summary"]["total"] = checks.size();
    text += "\n" + std::to_string(passed) + " passed, " + std::to_string(warnings) + " warning" + (warnings == 1 ? "" : "s") + ", " +
            std::to_string(failed) + " failed, 0 skipped, 0 unknown, 0 errors\n";
    text += "Verdict: " + verdict + " — the verdict\n";
    return {text, j.dump(2) + "\n"};
}

const std::vector<Chk> kBase = {
    {"cpu.virt", "pass", "VMX is present"},
    {"kvm.module", "pass", "kvm_intel is loaded"},
    {"kvm.nested", "warn", "nested is off", {"      -> Enable it.", "      $ modprobe kvm_intel nested=1"}},
};
// The same host kind with the module missing.
const std::vector<Chk> kCase = {
    {"cpu.virt", "pass", "VMX is present"},
    {"kvm.module", "fail", "kvm_intel is not loaded", {"      -> Load it.", "      $ modprobe kvm_intel"}},
    {"kvm.nested", "warn", "nested is off", {"      -> Enable it.", "      $ modprobe kvm_intel nested=1"}},
};

TEST(GoldenOverlay, TheSameOutputIsAnOverlayOfNothing) {
    const auto b = outputs("b", kBase, "ready");
    EXPECT_EQ(golden::make_overlay("b", b, b), Json({{"base", "b"}}));
}

TEST(GoldenOverlay, HoldsOnlyWhatDiffersAndComposesBackExactly) {
    const auto b = outputs("b", kBase, "ready");
    const auto c = outputs("b", kCase, "not_ready");
    const Json o = golden::make_overlay("b", b, c);
    ASSERT_TRUE(o.contains("checks"));
    EXPECT_EQ(o["checks"].size(), 1u) << o.dump(2);
    EXPECT_TRUE(o["checks"].contains("kvm.module"));
    EXPECT_EQ(o["fields"], Json({{"verdict", "not_ready"}}));
    EXPECT_EQ(o["text_tail"], Json::array({"Verdict: not_ready — the verdict"}));
    EXPECT_FALSE(o.contains("text_head"));
    EXPECT_FALSE(o.contains("only"));
    const auto back = golden::compose(b, o);
    EXPECT_EQ(back.text, c.text);
    EXPECT_EQ(back.json, c.json);
}

// The point of overlays: a new check (here with a longer id, which widens
// every text line, in a new category, and counted in both summaries) that
// prints the same on the case as on the base changes the base's files only.
TEST(GoldenOverlay, ACheckAddedAlikeToBaseAndCaseLeavesTheOverlayAlone) {
    const auto before = golden::make_overlay("b", outputs("b", kBase, "ready"), outputs("b", kCase, "not_ready"));
    auto base = kBase, kase = kCase;
    const Chk added{"memory.transparent-hugepages", "pass", "THP is madvise"};
    base.push_back(added);
    kase.push_back(added);
    const auto b2 = outputs("b", base, "ready");
    const auto c2 = outputs("b", kase, "not_ready");
    EXPECT_NE(b2.text, outputs("b", kBase, "ready").text);
    const Json after = golden::make_overlay("b", b2, c2);
    EXPECT_EQ(after, before);
    // And the unchanged overlay composes to the new output exactly.
    const auto back = golden::compose(b2, before);
    EXPECT_EQ(back.text, c2.text);
    EXPECT_EQ(back.json, c2.json);
    // Where the new check differs, the overlay gains that check only.
    kase.back() = {"memory.transparent-hugepages", "warn", "THP is never", {"      -> Set madvise."}};
    const Json differs = golden::make_overlay("b", b2, outputs("b", kase, "not_ready"));
    EXPECT_EQ(differs["checks"].size(), 2u);
    EXPECT_TRUE(differs["checks"].contains("memory.transparent-hugepages"));
}

TEST(GoldenOverlay, ASelectionNamesItsChecks) {
    const auto b = outputs("b", kBase, "ready");
    const auto sel = outputs("b", {kBase[2]}, "passed_with_warnings");
    const Json o = golden::make_overlay("b", b, sel);
    EXPECT_EQ(o["only"], Json::array({"kvm.nested"}));
    EXPECT_FALSE(o.contains("checks")) << "kvm.nested prints as on the base, padding aside";
    const auto back = golden::compose(b, o);
    EXPECT_EQ(back.text, sel.text);
    EXPECT_EQ(back.json, sel.json);
}

TEST(GoldenOverlay, RefusesWhatItCannotCompose) {
    const auto b = outputs("b", kBase, "ready");
    auto odd = b;
    odd.text.insert(odd.text.find("\nKVM\n") + 1, "  a stray indented line\n");
    EXPECT_THROW(golden::make_overlay("b", b, odd), std::runtime_error);
    EXPECT_THROW(golden::compose(b, Json({{"base", "b"}, {"checks", {{"no.such", {{"text", {"  PASS no.such  x"}}}}}}})),
                 std::runtime_error);
    EXPECT_THROW(golden::compose(b, Json({{"base", "b"}, {"only", {"no.such"}}})), std::runtime_error);
    EXPECT_THROW(golden::compose(b, Json({{"base", "b"}, {"fields", {{"summary", 1}}}})), std::runtime_error);
}

}  // namespace
