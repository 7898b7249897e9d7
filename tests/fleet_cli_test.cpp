// `kvmready fleet` end to end with the real binary: host reports made by
// `check --root` from copies of the recorded fixture trees, bundles made by
// `report --root` from them, and inputs that are broken on purpose.
#include <sys/stat.h>

#include <map>
#include <set>

#include "fleet_common.hpp"
#include "fleet/model.hpp"
#include "report/bundle.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace kvmready::fleettest;
using nlohmann::json;
namespace fs = std::filesystem;

class FleetCli : public ::testing::Test {
protected:
    // The reports are made once for the suite: each `check --root` run is real.
    static void SetUpTestSuite() {
        dir_ = new kvmready::testsupport::TempDir("kvmready-fleet-cli");
        fs::create_directories(dir_->path / "reports");
        for (const auto& h : fleet_hosts()) {
            const fs::path tree = tree_copy(dir_->path, h.fixture, h.as, h.machine_id);
            (*reports_)[h.as] = json_report(tree, dir_->path / "reports" / (std::string(h.as) + ".json"));
        }
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static fs::path path(const std::string& rel) { return dir_->path / rel; }
    static kvmready::testsupport::TempDir* dir_;
    static std::map<std::string, json>* reports_;
};
kvmready::testsupport::TempDir* FleetCli::dir_ = nullptr;
std::map<std::string, json>* FleetCli::reports_ = new std::map<std::string, json>;

TEST_F(FleetCli, ReportsCarryIdentityAndRunTime) {
    const json& a = reports_->at("intel-vtx");
    const json& b = reports_->at("intel-vtx-clone");
    EXPECT_EQ(a["host"]["hostname"], b["host"]["hostname"]);
    EXPECT_NE(a["host"]["id"], b["host"]["id"]);
    EXPECT_EQ(a["host"]["id"].get<std::string>().size(), 16u);
    EXPECT_EQ(a["host"]["id_source"], "/etc/machine-id");
    EXPECT_TRUE(a["host"]["id_reason"].is_null());
    ASSERT_TRUE(kvmready::fleet::parse_rfc3339(a["run"]["started"].get<std::string>()));
    EXPECT_LT(std::abs(*kvmready::fleet::parse_rfc3339(a["run"]["started"]) - static_cast<int64_t>(::time(nullptr))), 600);
    EXPECT_GE(a["run"]["duration_ms"].get<int64_t>(), 0);
    EXPECT_TRUE(a["run"]["recorded_at"].is_null());
    // The machine-id itself is nowhere in the report.
    EXPECT_EQ(a.dump().find("1111111111111111"), std::string::npos);
    // A tree without any id says so, with the reason.
    const auto c = run_kvmready({"check", "--root", (fs::path(kFixtures) / "intel-vtx").string(), "--json"});
    const json u = json::parse(c.out);
    EXPECT_EQ(u["host"]["id"], "unknown");
    EXPECT_NE(u["host"]["id_reason"].get<std::string>().find("/etc/machine-id"), std::string::npos);
}

TEST_F(FleetCli, BundleReplaysTheIdentityAndKeepsTheRecordingTime) {
    const fs::path bundle = path("id-bundle.tar.gz");
    const auto r = run_kvmready({"report", "--root", path("trees/intel-vtx").string(), "-o", bundle.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto c = run_kvmready({"check", "--from", bundle.string(), "--json"});
    ASSERT_LT(c.exit_code, 64) << c.err;
    const json j = json::parse(c.out);
    EXPECT_EQ(j["host"]["id"], reports_->at("intel-vtx")["host"]["id"]);
    ASSERT_TRUE(j["run"]["recorded_at"].is_string());
    EXPECT_TRUE(kvmready::fleet::parse_rfc3339(j["run"]["recorded_at"].get<std::string>()));
    EXPECT_TRUE(kvmready::fleet::parse_rfc3339(j["run"]["started"].get<std::string>()));
    // Redacted consistently: the raw id is in no file of the bundle.
    auto opened = kvmready::report::open_bundle(bundle.string());
    const fs::path top = fs::path(opened->host_tree()).parent_path();
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(top))
        if (e.is_regular_file()) {
            ++files;
            EXPECT_EQ(slurp(e.path()).find("11111111111111111111111111111111"), std::string::npos) << e.path();
        }
    EXPECT_GT(files, 10);
}

TEST_F(FleetCli, FleetOfRealReportsAndBundles) {
    // A bundle of a host whose JSON is also there: one host, the newer report wins.
    ASSERT_EQ(run_kvmready({"report", "--root", path("trees/no-kvm-module").string(), "-o", path("reports/nokvm.tar.gz").string()}).exit_code, 0);
    spit(path("inventory.ini"), "[kvm]\nr640-kvm01\nghost-host\n");
    const auto c = run_kvmready({"fleet", path("reports").string(), "--inventory", path("inventory.ini").string(), "--json", "-"});
    EXPECT_EQ(c.exit_code, 1) << c.err;  // hosts not ready, one missing
    const json f = json::parse(c.out);
    ASSERT_EQ(f["hosts"].size(), fleet_hosts().size()) << c.out.substr(0, 2000);
    std::map<std::string, int> verdicts;
    for (const auto& [as, rep] : *reports_) ++verdicts[rep["verdict"].get<std::string>()];
    for (const auto& [v, n] : verdicts) EXPECT_EQ(f["summary"]["verdicts"][v], n) << v;
    int clones = 0;
    std::set<std::string> ids;
    for (const auto& h : f["hosts"]) {
        ids.insert(h["id"].get<std::string>());
        if (h["hostname"] == reports_->at("intel-vtx")["host"]["hostname"]) ++clones;
        if (h["id"] == reports_->at("no-kvm-module")["host"]["id"]) {
            EXPECT_EQ(h["source"], "bundle") << "the bundle was replayed just now: newer than the JSON";
            EXPECT_EQ(h["superseded"].size(), 1u);
        }
    }
    EXPECT_EQ(clones, 2) << "same hostname, different machine-ids: two hosts";
    EXPECT_EQ(ids.size(), fleet_hosts().size());
    EXPECT_EQ(f["missing"], json::array({"ghost-host"}));
    // Ranking: counts descend, and each names the hosts its check blocks and a fix.
    ASSERT_GE(f["ranking"].size(), 1u);
    for (size_t i = 1; i < f["ranking"].size(); ++i) EXPECT_GE(f["ranking"][i - 1]["hosts_blocked"], f["ranking"][i]["hosts_blocked"]);
    for (const auto& r : f["ranking"]) {
        EXPECT_EQ(r["hosts_blocked"], r["hosts"].size());
        EXPECT_FALSE(r["fixes"].empty());
    }
    fs::remove(path("reports/nokvm.tar.gz"));
}

TEST_F(FleetCli, StaleReportsAndExitCodes) {
    const fs::path d = path("stale");
    fs::create_directories(d);
    json old = reports_->at("intel-vtx");
    old["run"]["started"] = "2026-01-01T00:00:00Z";
    spit(d / "old.json", old.dump());
    json fresh = reports_->at("amd-nested");
    spit(d / "fresh.json", fresh.dump());
    auto c = run_kvmready({"fleet", d.string(), "--json"});
    json f = json::parse(c.out);
    EXPECT_EQ(f["summary"]["stale"], 1);
    for (const auto& h : f["hosts"]) EXPECT_EQ(h["stale"], h["report"] == (d / "old.json").string());
    EXPECT_EQ(c.exit_code, 1) << "a stale report is not a ready host";
    c = run_kvmready({"fleet", d.string(), "--json", "--stale-after", "5000w"});
    EXPECT_EQ(json::parse(c.out)["summary"]["stale"], 0);
    const bool ready = kvmready::fleet::ready_verdict(old["verdict"]) && kvmready::fleet::ready_verdict(fresh["verdict"]);
    EXPECT_EQ(c.exit_code, ready ? 0 : 1);
    EXPECT_EQ(run_kvmready({"fleet", d.string(), "--stale-after", "soon"}).exit_code, 64);
    EXPECT_EQ(run_kvmready({"fleet", d.string(), "--inventory", path("absent.ini").string()}).exit_code, 66);
    spit(path("bad-inventory.yml"), "all:\n  hosts:\n    web[9:1]:\n");
    EXPECT_EQ(run_kvmready({"fleet", d.string(), "--inventory", path("bad-inventory.yml").string()}).exit_code, 65);
    // Nothing is written when an output cannot be: 73, and the other output is not made either.
    const auto w = run_kvmready({"fleet", d.string(), "-o", path("out.html").string(), "--json", path("no/such/dir/f.json").string()});
    EXPECT_EQ(w.exit_code, 73) << w.err;
    EXPECT_FALSE(fs::exists(path("out.html")));
    // --json right before the reports would take a report as its file: refused, the report intact.
    const std::string before = slurp(d / "old.json");
    EXPECT_EQ(run_kvmready({"fleet", "--json", (d / "old.json").string(), (d / "fresh.json").string()}).exit_code, 64);
    EXPECT_EQ(slurp(d / "old.json"), before);
    // Both outputs, written whole.
    const auto ok = run_kvmready({"fleet", d.string(), "-o", path("out.html").string(), "--json=" + path("out.json").string()});
    EXPECT_EQ(ok.exit_code, 1) << ok.err;
    EXPECT_NE(slurp(path("out.html")).find("</html>"), std::string::npos);
    EXPECT_EQ(json::parse(slurp(path("out.json")))["format"], "kvmready-fleet/1");
}

TEST_F(FleetCli, BrokenInputsAreListedWithReasonsNeverAbort) {
    const fs::path d = path("broken");
    fs::create_directories(d / "sub");
    const std::string good = reports_->at("intel-vtx").dump(2);
    spit(d / "good.json", good);
    spit(d / "truncated.json", good.substr(0, good.size() / 3));
    spit(d / "foreign.json", R"({"apiVersion": "v1", "kind": "Node"})");
    json v9 = reports_->at("amd-nested");
    v9["schema_version"] = 9;
    spit(d / "sub/future.json", v9.dump());
    spit(d / "garbage.tar.gz", std::string("\x1f\x8b\x08\x00garbage", 11));
    spit(d / "empty.json", "");
    ASSERT_EQ(::mkfifo((d / "fifo.json").c_str(), 0600), 0);
    json hostile = reports_->at("vmx-locked");
    hostile["host"]["hostname"] = 42;
    spit(d / "hostile.json", hostile.dump());
    const auto c = run_kvmready({"fleet", d.string(), (d / "missing.json").string(), "--json"});
    EXPECT_EQ(c.exit_code, 1) << c.err;
    const json f = json::parse(c.out);
    EXPECT_EQ(f["hosts"].size(), 1u);
    std::map<std::string, std::string> why;
    for (const auto& u : f["unreadable"]) why[fs::path(u["path"].get<std::string>()).filename().string()] = u["error"];
    EXPECT_NE(why["truncated.json"].find("not valid JSON"), std::string::npos) << why["truncated.json"];
    EXPECT_NE(why["foreign.json"].find("not a kvmready report"), std::string::npos) << why["foreign.json"];
    EXPECT_NE(why["future.json"].find("schema version 9"), std::string::npos) << why["future.json"];
    EXPECT_NE(why["garbage.tar.gz"], "");
    EXPECT_EQ(why["empty.json"], "empty file");
    EXPECT_NE(why["fifo.json"].find("FIFO"), std::string::npos) << why["fifo.json"];
    EXPECT_NE(why["hostile.json"].find("host.hostname"), std::string::npos) << why["hostile.json"];
    EXPECT_NE(why["missing.json"], "");
    EXPECT_EQ(why.size(), 8u);
    // Nothing readable at all: 66, the reasons on stderr.
    const auto none = run_kvmready({"fleet", (d / "truncated.json").string(), (d / "foreign.json").string()});
    EXPECT_EQ(none.exit_code, 66);
    EXPECT_NE(none.err.find("foreign.json"), std::string::npos) << none.err;
}

// The summary on a terminal: a report's strings cannot send escape
// sequences or forge lines.
TEST_F(FleetCli, SummaryNeutralisesControlCharacters) {
    const fs::path d = path("escapes");
    fs::create_directories(d);
    json r = reports_->at("no-kvm-module");
    bool changed = false;
    for (auto& c : r["checks"])
        if (c["status"] == "fail" && !changed) {
            c["title"] = "evil\x1b[2J\nforged line";
            changed = true;
        }
    ASSERT_TRUE(changed);
    spit(d / "r.json", r.dump());
    const auto c = run_kvmready({"fleet", d.string()});
    EXPECT_EQ(c.exit_code, 1) << c.err;
    EXPECT_EQ(c.out.find('\x1b'), std::string::npos) << c.out;
    EXPECT_NE(c.out.find("evil?[2J?forged line"), std::string::npos) << c.out;
}

}  // namespace
