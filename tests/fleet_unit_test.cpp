// The fleet report's parts in memory: host identity, loading and rejecting
// reports, inventories, the model (identity, staleness, ranking) and the
// HTML's escaping. The real binary on recorded trees: fleet_cli_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "fleet/inventory.hpp"
#include "fleet/load.hpp"
#include "fleet/model.hpp"
#include "fleet/render.hpp"
#include "host/host.hpp"
#include "support/temp_dir.hpp"
#include "util/sha256.hpp"

namespace {

using namespace kvmready;
using nlohmann::json;

// A minimal report of the schema `check --json` prints.
json report(const std::string& hostname, const std::string& id, const std::string& verdict, const std::string& started,
            const std::vector<std::pair<std::string, std::string>>& checks) {
    json cs = json::array();
    for (const auto& [cid, st] : checks)
        cs.push_back({{"id", cid}, {"title", "title of " + cid}, {"level", "required"}, {"status", st}, {"message", "m"},
                      {"remediation", {{"text", "fix " + cid}, {"commands", {"cmd " + cid}}, {"fix_id", nullptr}}}});
    return {{"schema_version", 1}, {"tool", {{"name", "kvmready"}, {"version", "0"}}}, {"run", {{"started", started}, {"duration_ms", 3}}},
            {"host", {{"hostname", hostname}, {"id", id}}}, {"verdict", verdict}, {"checks", cs}};
}

fleet::LoadedReport loaded(const json& j, const std::string& path) { return {path, j, "", "json"}; }

constexpr int64_t kNow = 1796670000;  // 2026-12-07T19:00:00Z

TEST(FleetUnit, Sha256MatchesTheStandardVectors) {
    EXPECT_EQ(util::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(util::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(util::sha256_hex(std::string(1000, 'a')), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
    EXPECT_EQ(util::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(FleetUnit, IdentityIsASaltedHashOfAUsableId) {
    const auto a = host::identity_from("/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->id.size(), 16u);
    EXPECT_EQ(a->source, "/etc/machine-id");
    // Not the plain hash of the id: another tool's hash of it does not match.
    EXPECT_EQ(util::sha256_hex("0123456789abcdef0123456789abcdef").find(a->id), std::string::npos);
    // Case and whitespace do not change who the host is.
    EXPECT_EQ(host::identity_from("/etc/machine-id", " 0123456789ABCDEF0123456789ABCDEF ")->id, a->id);
    EXPECT_NE(host::identity_from("/etc/machine-id", "1123456789abcdef0123456789abcdef")->id, a->id);
    for (const char* bad : {"", "uninitialized\n", "00000000000000000000000000000000", "xyz"})
        EXPECT_FALSE(host::identity_from("/etc/machine-id", bad)) << bad;
    EXPECT_TRUE(host::identity_from("/sys/class/dmi/id/product_uuid", "4c4c4544-0042-3510-8052-b4c04f4e4d32"));
    for (const char* filler : {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "03000200-0400-0500-0006-000700080009"})
        EXPECT_FALSE(host::identity_from("/sys/class/dmi/id/product_uuid", filler)) << filler;
}

TEST(FleetUnit, IdentityFallsBackInOrderAndSaysWhyItIsUnknown) {
    testsupport::TempDir dir("kvmready-fleet-id");
    std::filesystem::create_directories(dir.path / "var/lib/dbus");
    std::ofstream(dir.path / "var/lib/dbus/machine-id") << "abcdefabcdefabcdefabcdefabcdefab\n";
    const auto h = host::make_rooted_host(dir.path.string());
    const auto id = h->identity();
    EXPECT_EQ(id.source, "/var/lib/dbus/machine-id");
    EXPECT_EQ(id.id, host::identity_from("x", "abcdefabcdefabcdefabcdefabcdefab")->id);
    std::filesystem::remove(dir.path / "var/lib/dbus/machine-id");
    const auto none = host::make_rooted_host(dir.path.string())->identity();
    EXPECT_TRUE(none.id.empty());
    for (const char* p : {"/etc/machine-id", "/var/lib/dbus/machine-id", "/sys/class/dmi/id/product_uuid"})
        EXPECT_NE(none.error.find(p), std::string::npos) << none.error;
}

TEST(FleetUnit, ForeignAndMalformedReportsAreNamed) {
    EXPECT_EQ(fleet::report_problem(report("a", "1", "ready", "2026-12-07T18:00:00Z", {{"kvm.device", "pass"}})), "");
    EXPECT_NE(fleet::report_problem(json::array()).find("not a kvmready report"), std::string::npos);
    EXPECT_NE(fleet::report_problem(json{{"tool", {{"name", "other"}}}}).find("not a kvmready report"), std::string::npos);
    json v2 = report("a", "1", "ready", "x", {});
    v2["schema_version"] = 2;
    EXPECT_NE(fleet::report_problem(v2).find("schema version 2"), std::string::npos);
    json bad = report("a", "1", "ready", "x", {{"k", "pass"}});
    bad["checks"][0]["remediation"]["commands"] = {1, 2};
    EXPECT_NE(fleet::report_problem(bad).find("checks[0].remediation.commands"), std::string::npos);
    bad = report("a", "1", "ready", "x", {});
    bad["host"]["hostname"] = 7;
    EXPECT_NE(fleet::report_problem(bad).find("host.hostname"), std::string::npos);
}

TEST(FleetUnit, LoadingNeverThrowsAndSaysWhy) {
    testsupport::TempDir dir("kvmready-fleet-load");
    const auto write = [&](const std::string& name, const std::string& text) {
        std::ofstream(dir.path / name, std::ios::binary) << text;
        return (dir.path / name).string();
    };
    const std::string good = report("a", "1", "ready", "2026-12-07T18:00:00Z", {{"kvm.device", "pass"}}).dump();
    EXPECT_EQ(fleet::load_report(write("good.json", good)).error, "");
    EXPECT_NE(fleet::load_report(write("cut.json", good.substr(0, good.size() / 2))).error.find("not valid JSON"), std::string::npos);
    EXPECT_EQ(fleet::load_report(write("empty.json", "")).error, "empty file");
    EXPECT_NE(fleet::load_report(write("bad.tar.gz", "not gzip at all")).error, "");
    EXPECT_NE(fleet::load_report((dir.path / "absent.json").string()).error, "");
    EXPECT_NE(fleet::load_report(write("utf8.json", "{\"a\": \"\xff\"}")).error.find("not valid JSON"), std::string::npos);
    // A directory stands for every report below it; hidden files are a writer's temporaries.
    write(".partial.json", "{");
    const auto all = fleet::load_reports({dir.path.string()});
    std::set<std::string> names;
    for (const auto& r : all) names.insert(std::filesystem::path(r.path).filename().string());
    EXPECT_EQ(names, (std::set<std::string>{"bad.tar.gz", "cut.json", "empty.json", "good.json", "utf8.json"}));
}

TEST(FleetUnit, SameHostnameDifferentIdsStayTwoHostsAndTheNewestReportWins) {
    std::vector<fleet::LoadedReport> in = {
        loaded(report("kvm01", "aaaa", "ready", "2026-12-07T18:00:00Z", {{"kvm.device", "pass"}}), "a.json"),
        loaded(report("kvm01", "bbbb", "not_ready", "2026-12-07T18:00:00Z", {{"kvm.device", "fail"}}), "b.json"),
        loaded(report("kvm01", "aaaa", "not_ready", "2026-12-07T10:00:00Z", {{"kvm.device", "fail"}}), "a-old.json"),
    };
    const auto f = fleet::build_fleet(in, std::nullopt, kNow, 86400);
    ASSERT_EQ(f.hosts.size(), 2u);
    EXPECT_EQ(f.hosts[0].id, "aaaa");
    EXPECT_EQ(f.hosts[0].verdict, "ready");
    EXPECT_EQ(f.hosts[0].superseded, std::vector<std::string>{"a-old.json"});
    EXPECT_EQ(f.hosts[1].id, "bbbb");
    ASSERT_EQ(f.ranked.size(), 1u);
    EXPECT_EQ(f.ranked[0].hosts.size(), 1u);
    EXPECT_FALSE(f.all_ready());
}

TEST(FleetUnit, StaleMissingAndRanking) {
    std::vector<fleet::LoadedReport> in = {
        loaded(report("a", "1", "not_ready", "2026-12-07T18:00:00Z", {{"x", "fail"}, {"y", "fail"}}), "a"),
        loaded(report("b.example.org", "2", "not_ready", "2026-12-05T18:00:00Z", {{"x", "fail"}, {"y", "warn"}}), "b"),
        loaded(report("c", "3", "ready", "2026-12-07T18:30:00+01:00", {{"x", "pass"}}), "c"),
        loaded(report("d", "4", "ready", "", {{"x", "pass"}}), "d"),
        {"e", std::nullopt, "not valid JSON", "json"},
    };
    const auto f = fleet::build_fleet(in, std::vector<std::string>{"a", "b", "c", "ghost"}, kNow, 86400);
    ASSERT_EQ(f.hosts.size(), 4u);
    EXPECT_FALSE(f.hosts[0].stale);
    EXPECT_TRUE(f.hosts[1].stale);   // two days old
    EXPECT_FALSE(f.hosts[2].stale);  // an offset is honoured: 17:30Z
    EXPECT_TRUE(f.hosts[3].stale);   // age unknown
    EXPECT_FALSE(f.hosts[3].in_inventory);
    EXPECT_EQ(f.stale_count(), 2);
    EXPECT_EQ(f.missing, std::vector<std::string>{"ghost"});  // b matches b.example.org
    ASSERT_EQ(f.unreadable.size(), 1u);
    ASSERT_EQ(f.ranked.size(), 2u);
    EXPECT_EQ(f.ranked[0].id, "x");
    EXPECT_EQ(f.ranked[0].hosts, (std::vector<std::string>{"a", "b.example.org"}));
    EXPECT_EQ(f.ranked[1].id, "y");
    EXPECT_EQ(f.ranked[1].warned, 1);
    ASSERT_EQ(f.ranked[0].fixes.size(), 1u);
    EXPECT_EQ(f.ranked[0].fixes[0].text, "fix x");
    EXPECT_EQ(f.ranked[0].fixes[0].hosts, 2);
    const auto j = fleet::render_fleet_json(f);
    EXPECT_EQ(j["summary"]["verdicts"]["not_ready"], 2);
    EXPECT_EQ(j["summary"]["missing"], 1);
    EXPECT_EQ(j["ranking"][0]["hosts_blocked"], 2);
}

TEST(FleetUnit, HostileStringsAreEscapedInTheHtml) {
    const std::string evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    json r = report(evil, "1", "not_ready", "2026-12-07T18:00:00Z", {{"kvm.<b>", "fail"}});
    r["checks"][0]["message"] = evil;
    r["checks"][0]["remediation"]["text"] = evil;
    const auto f = fleet::build_fleet({loaded(r, evil + ".json")}, std::vector<std::string>{evil + "2"}, kNow, 86400);
    const std::string html = fleet::render_html(f);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("<img"), std::string::npos);
    EXPECT_EQ(html.find("<b>\""), std::string::npos);
    EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
    EXPECT_EQ(html.find("http://"), std::string::npos);
    EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST(FleetUnit, InventoriesInEveryFormat) {
    using V = std::vector<std::string>;
    EXPECT_EQ(fleet::parse_inventory("# hosts\nkvm01\nkvm02.example.org\n\nkvm01\n", "plain"), (V{"kvm01", "kvm02.example.org"}));
    EXPECT_EQ(fleet::parse_inventory("ungrouped1 ansible_host=10.0.0.1\n[kvm]\nkvm[01:03] ansible_user=root\nweb:2222\n"
                                     "[kvm:vars]\nnot_a_host=1\n[all:children]\nkvm\n",
                                     "ini"),
              (V{"ungrouped1", "kvm01", "kvm02", "kvm03", "web"}));
    EXPECT_EQ(fleet::parse_inventory("---\nall:\n  hosts:\n    a1:\n      ansible_host: 10.0.0.1\n  children:\n    kvm:\n      hosts:\n"
                                     "        kvm-[a:c]:\n      vars:\n        x: 1\n",
                                     "yaml"),
              (V{"a1", "kvm-a", "kvm-b", "kvm-c"}));
    EXPECT_EQ(fleet::parse_inventory(R"({"_meta": {"hostvars": {"h1": {}}}, "all": {"children": ["kvm", "ungrouped"]},
                                        "kvm": {"hosts": ["h1", "h2"]}, "ungrouped": {"hosts": ["h3"]}})",
                                     "json"),
              (V{"h1", "h2", "h3"}));
    EXPECT_EQ(fleet::expand_host_range("n[1:5:2].x"), (V{"n1.x", "n3.x", "n5.x"}));
    EXPECT_THROW(fleet::expand_host_range("n[5:1]"), DataError);
    EXPECT_THROW(fleet::expand_host_range("n[0:99999999]"), DataError);
    EXPECT_THROW(fleet::parse_inventory("{\"a\": ", "cut"), DataError);
}

TEST(FleetUnit, TimesAndAges) {
    EXPECT_EQ(fleet::parse_rfc3339("2026-12-07T19:00:00Z"), kNow);
    EXPECT_EQ(fleet::parse_rfc3339("2026-12-07T19:00:00.250Z"), kNow);
    EXPECT_EQ(fleet::parse_rfc3339("2026-12-07T20:00:00+01:00"), kNow);
    for (const char* bad : {"", "yesterday", "2026-12-07 19:00:00", "2026-13-07T19:00:00Z", "2026-12-07T19:00:00"})
        EXPECT_FALSE(fleet::parse_rfc3339(bad)) << bad;
    EXPECT_EQ(fleet::human_age(45), "45s");
    EXPECT_EQ(fleet::human_age(86400), "24h");
    EXPECT_EQ(fleet::human_age(3 * 86400 + 3600), "3d 1h");
}

}  // namespace
