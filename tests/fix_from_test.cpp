// `kvmready fix --from BUNDLE|DIR`: the plan for the host a support bundle
// recorded, printed on another machine, changing nothing. The same facts
// give the same plan: a bundle of a recorded tree plans what `fix --root`
// plans for that tree, and the unpacked directory plans what the archive does.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using kvmready::testsupport::Captured;
using kvmready::testsupport::run_captured;
using kvmready::testsupport::TempDir;

namespace {

Captured tool(std::vector<std::string> args) {
    args.insert(args.begin(), KVMREADY_BINARY);
    return run_captured(args, 60000);
}

std::string show(const Captured& c) { return fmt::format("exit {}\n--- stdout\n{}\n--- stderr\n{}", c.exit_code, c.out, c.err); }

// The fix ids a dry run plans (plans, then the manual ones by what they repair).
std::vector<std::string> planned(const Captured& c) {
    std::vector<std::string> ids;
    const auto j = nlohmann::json::parse(c.out);
    for (const auto& p : j["plans"]) ids.push_back(p["fix_id"].get<std::string>());
    return ids;
}

// A bundle of a recorded fixture tree, as a support engineer receives it.
fs::path bundle_of(const std::string& fixture, const fs::path& dir) {
    const fs::path out = dir / (fixture + ".tar.gz");
    const Captured r = tool({"report", "--root", fs::path(KVMREADY_FIXTURES_DIR) / fixture, "-o", out, "--no-redact"});
    EXPECT_EQ(r.exit_code, 0) << show(r);
    return out;
}

}  // namespace

TEST(FixFrom, ABundleOfARecordedTreePlansWhatTheTreeNeeds) {
    TempDir t;
    const fs::path bundle = bundle_of("no-kvm-module", t.path);
    const Captured from = tool({"fix", "--from", bundle, "--json"});
    ASSERT_EQ(from.exit_code, 2) << "fixes are planned\n" << show(from);
    const auto j = nlohmann::json::parse(from.out);
    EXPECT_EQ(j["mode"], "dry-run");
    EXPECT_EQ(j["target"], "bundle:" + bundle.string());
    // Golden: the module is missing from this recorded host, and nothing else the
    // fixes repair without options of their own (its user is root, its libvirt is absent).
    const std::vector<std::string> ids = planned(from);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), "kvm.modules-load") << from.out;
    // The same facts as `fix --root` on the tree itself: the same fixes.
    const Captured root = tool({"fix", "--root", fs::path(KVMREADY_FIXTURES_DIR) / "no-kvm-module", "--json"});
    ASSERT_EQ(root.exit_code, 2) << show(root);
    EXPECT_EQ(ids, planned(root));
    // Text: the plan as `fix` prints it, with the hint to apply it (on the customer's host).
    const Captured text = tool({"fix", "--from", bundle});
    EXPECT_EQ(text.exit_code, 2) << show(text);
    EXPECT_NE(text.out.find("kvmready fix · dry run: nothing is changed"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("] kvm.modules-load · automatic"), std::string::npos) << text.out;
}

TEST(FixFrom, TheUnpackedDirectoryPlansWhatTheArchiveDoes) {
    TempDir t;
    const fs::path bundle = bundle_of("kvm-group-outside", t.path);
    const fs::path dir = t.path / "unpacked";
    fs::create_directories(dir);
    const Captured untar = run_captured({"/bin/tar", "-xzf", bundle.string(), "-C", dir.string()}, 60000);
    ASSERT_EQ(untar.exit_code, 0) << show(untar);
    // The options apply to the recorded host: alice is one of its users.
    const Captured a = tool({"fix", "--from", bundle, "--user", "alice", "--json"});
    const Captured d = tool({"fix", "--from", dir, "--user", "alice", "--json"});
    ASSERT_EQ(a.exit_code, d.exit_code) << show(a) << show(d);
    EXPECT_EQ(planned(a), planned(d));
    // Golden: alice is outside group kvm on the recorded host.
    const auto ids = planned(d);
    EXPECT_NE(std::find(ids.begin(), ids.end(), "user.groups"), ids.end()) << d.out;
}

// A bundle of this host, planned from the bundle, names the fixes a dry run
// on this host names: the plan travels with the facts.
TEST(FixFrom, ABundleOfThisHostPlansWhatFixPlansHere) {
    TempDir t;
    const fs::path bundle = t.path / "live.tar.gz";
    const Captured rep = tool({"report", "-o", bundle, "--no-redact"});
    if (rep.exit_code != 0) GTEST_SKIP() << "kvmready report cannot bundle this host: " << show(rep);
    const Captured here = tool({"fix", "--json"});
    const Captured from = tool({"fix", "--from", bundle, "--json"});
    ASSERT_EQ(nlohmann::json::parse(here.out)["errors"].size(), 0u) << here.out;
    // Bundles leave out the host's routes and addresses (they identify it), so
    // what needs a free subnet (a new libvirt network, and the forwarding it
    // brings) is named as not plannable from the bundle, with why: every
    // other fix is planned exactly as here.
    std::vector<std::string> expected = planned(here);
    const auto from_json = nlohmann::json::parse(from.out);
    for (const auto& e : from_json["errors"]) {
        const std::string text = e.get<std::string>();
        EXPECT_NE(text.find("routes and addresses are not recorded"), std::string::npos) << text;
        expected.erase(std::remove(expected.begin(), expected.end(), text.substr(0, text.find(':'))), expected.end());
    }
    EXPECT_EQ(expected, planned(from)) << here.out << "\n---\n" << from.out;
    if (!expected.empty()) EXPECT_EQ(here.exit_code, from.exit_code) << show(here) << show(from);
}

// `report --uplink/--pool-path` record what `fix --from` plans from: they
// take the same values `fix` takes, and refuse the rest before anything is written.
TEST(FixFrom, ReportTakesUplinkAndPoolPathAsFixDoes) {
    TempDir t;
    const fs::path out = t.path / "r.tar.gz";
    for (const std::vector<std::string>& bad : {std::vector<std::string>{"--uplink", "eth0"}, {"--pool-path", "relative/dir"}}) {
        std::vector<std::string> args = {"report", "--root", (fs::path(KVMREADY_FIXTURES_DIR) / "no-kvm-module").string(), "-o", out};
        args.insert(args.end(), bad.begin(), bad.end());
        const Captured r = tool(args);
        EXPECT_EQ(r.exit_code, 64) << bad[0] << "\n" << show(r);
        EXPECT_FALSE(fs::exists(out)) << bad[0];
        const Captured f = tool({"fix", bad[0], bad[1]});
        EXPECT_EQ(f.exit_code, 64) << show(f);
        EXPECT_EQ(r.err, f.err) << "report and fix say the same";
    }
}

TEST(FixFrom, RefusesToChangeAnythingWithUsageError64) {
    TempDir t;
    const fs::path bundle = bundle_of("no-kvm-module", t.path);
    for (const std::vector<std::string>& extra : {std::vector<std::string>{"--apply"}, {"--undo"}, {"--history"}}) {
        std::vector<std::string> args = {"fix", "--from", bundle};
        args.insert(args.end(), extra.begin(), extra.end());
        const Captured r = tool(args);
        EXPECT_EQ(r.exit_code, 64) << extra[0] << "\n" << show(r);
        EXPECT_NE(r.err.find("--from"), std::string::npos) << r.err;
    }
    const Captured both = tool({"fix", "--from", bundle, "--root", t.path});
    EXPECT_EQ(both.exit_code, 64) << show(both);
}
