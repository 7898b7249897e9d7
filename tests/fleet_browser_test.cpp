// The fleet page in a real browser: Debian's headless Chromium loads the
// file in a network namespace of its own (loopback only, so any fetch the
// page tried would fail, and nothing leaves the machine), dumps the DOM it
// built, and takes a screenshot into BUILD/test-artifacts/fleet.png.
// Assertions are on the DOM's text: counts, host names, the ranking, and
// that a hostile hostname stayed text.
#include <unistd.h>

#include <regex>

#include "fleet_common.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace kvmready::fleettest;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kEvil = "<img src=\"http://127.0.0.1:9/x.png\" onerror=\"document.title='pwned'\">evil-host";

std::string chromium_path() {
    for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
        if (::access(p, X_OK) == 0) return p;
    return "";
}

// The DOM's text: tags dropped, entities decoded (those the page uses).
std::string dom_text(std::string html) {
    html = std::regex_replace(html, std::regex("<[^>]*>"), " ");
    for (const auto& [e, c] : std::vector<std::pair<std::string, std::string>>{{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&apos;", "'"}, {"&amp;", "&"}}) {
        for (size_t p = html.find(e); p != std::string::npos; p = html.find(e, p + c.size())) html.replace(p, e.size(), c);
    }
    return std::regex_replace(html, std::regex("\\s+"), " ");
}

TEST(FleetBrowser, HeadlessChromiumRendersThePageWithoutNetwork) {
    const std::string chromium = chromium_path();
    if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian package chromium; scripts/dev.sh test installs it)";
    kvmready::testsupport::TempDir dir("kvmready-fleet-browser");
    fs::create_directories(dir.path / "reports");
    std::map<std::string, json> reports;
    for (const char* name : {"intel-vtx", "no-kvm-module", "vmx-locked"}) {
        const auto& spec = *std::find_if(fleet_hosts().begin(), fleet_hosts().end(), [&](const FleetHostSpec& s) { return std::string(s.as) == name; });
        reports[name] = json_report(tree_copy(dir.path, spec.fixture, spec.as, spec.machine_id), dir.path / "reports" / (std::string(name) + ".json"));
    }
    json evil = reports["no-kvm-module"];
    evil["host"]["hostname"] = kEvil;
    evil["host"]["id"] = "eeeeeeeeeeeeeeee";
    spit(dir.path / "reports/evil.json", evil.dump());
    spit(dir.path / "reports/broken.json", "{\"schema_version\": 1, \"tool\":");
    const fs::path page = dir.path / "fleet.html";
    const auto run = run_kvmready({"fleet", (dir.path / "reports").string(), "-o", page.string()});
    ASSERT_EQ(run.exit_code, 1) << run.err;
    const std::string html = slurp(page);
    // Nothing on the page points anywhere but into itself: no element has a
    // src/href/action that is not a #fragment, no CSS url() or @import.
    std::smatch m;
    const std::regex outward(R"(<[a-zA-Z][^<>]*\s(src|href|action|srcset|poster|data)\s*=\s*["']?[^"'#\s>])", std::regex::icase);
    EXPECT_FALSE(std::regex_search(html, m, outward)) << m.str();
    EXPECT_EQ(html.find("url("), std::string::npos);
    EXPECT_EQ(html.find("@import"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("<link"), std::string::npos);

    const fs::path artifacts = fs::path(KVMREADY_BUILD_DIR) / "test-artifacts";
    fs::create_directories(artifacts);
    const fs::path shot = artifacts / "fleet.png";
    fs::remove(shot);
    const std::vector<std::string> browser = {chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                                              "--user-data-dir=" + (dir.path / "profile").string(), "--window-size=1400,2000"};
    // A fresh network namespace: only a loopback device, and it is down.
    if (::access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "/usr/bin/unshare (util-linux) is missing: no network namespace for the browser";
    std::vector<std::string> netns = {"/usr/bin/unshare", "-n"};
    if (::geteuid() != 0) netns = {"/usr/bin/unshare", "-r", "-n"};
    auto argv = netns;
    argv.insert(argv.end(), browser.begin(), browser.end());
    argv.push_back("--dump-dom");
    argv.push_back("file://" + page.string());
    const auto dom = kvmready::testsupport::run_captured(argv, 120000);
    if (dom.exit_code != 0 && dom.out.empty() && dom.err.find("unshare") != std::string::npos)
        GTEST_SKIP() << "cannot make a network namespace for the browser: " << dom.err;
    ASSERT_EQ(dom.exit_code, 0) << dom.spawn_error << dom.err;
    ASSERT_NE(dom.out.find("</html>"), std::string::npos) << dom.out.substr(0, 500);

    // The hostile hostname stayed text: no element came of it, and its script did not run.
    EXPECT_EQ(dom.out.find("<img"), std::string::npos);
    EXPECT_FALSE(std::regex_search(dom.out, m, outward)) << m.str();
    EXPECT_NE(dom.out.find("<title>kvmready fleet report</title>"), std::string::npos);
    const std::string text = dom_text(dom.out);
    EXPECT_NE(text.find(kEvil), std::string::npos) << "the hostname is shown as written";
    EXPECT_NE(text.find("4 hosts"), std::string::npos) << text.substr(0, 600);
    std::map<std::string, int> verdicts;
    for (const auto& [n, r] : reports) ++verdicts[r["verdict"].get<std::string>()];
    ++verdicts[evil["verdict"].get<std::string>()];
    for (const auto& [v, n] : verdicts) EXPECT_NE(text.find(std::to_string(n) + " " + v), std::string::npos) << v << " in " << text.substr(0, 600);
    EXPECT_NE(text.find("1 unreadable"), std::string::npos);
    EXPECT_NE(text.find("broken.json"), std::string::npos);
    for (const auto& [n, r] : reports) EXPECT_NE(text.find(r["host"]["hostname"].get<std::string>()), std::string::npos) << n;
    // The ranking's first entry blocks the most hosts: no-kvm-module and its hostile twin share their failures.
    const auto first = std::regex_search(dom.out, m, std::regex(R"(<span class="rank-count">(\d+)</span>)"));
    ASSERT_TRUE(first);
    EXPECT_GE(std::stoi(m[1]), 2) << "the checks no-kvm-module fails block it and its twin";

    argv = netns;
    argv.insert(argv.end(), browser.begin(), browser.end());
    argv.push_back("--screenshot=" + shot.string());
    argv.push_back("file://" + page.string());
    const auto png = kvmready::testsupport::run_captured(argv, 120000);
    EXPECT_EQ(png.exit_code, 0) << png.err;
    ASSERT_TRUE(fs::exists(shot)) << png.err;
    EXPECT_EQ(slurp(shot).substr(1, 3), "PNG");
    EXPECT_GT(fs::file_size(shot), 10000u) << "a page, not a blank image";
}

}  // namespace
