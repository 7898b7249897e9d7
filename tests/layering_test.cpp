// The layers depend downward only: host (OS access) knows nothing of facts,
// the core (probe, facts, runner, verdict) knows no check, fix, smoke run,
// renderer or CLI. Data flows upward through the registries' metadata, so a
// newcomer can read the core alone. This scans the include lines of the
// sources themselves: an upward #include fails here, naming the file.
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fs = std::filesystem;

namespace {

const fs::path kSrc = fs::path(KVMREADY_SOURCE_DIR) / "src";

// Project includes ("dir/file.hpp") of every .hpp/.cpp directly under dir,
// as "file: include".
std::vector<std::pair<std::string, std::string>> project_includes(const fs::path& dir) {
    static const std::regex include_line(R"(^\s*#\s*include\s*"([^"]+)\")");
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto ext = e.path().extension();
        if (!e.is_regular_file() || (ext != ".hpp" && ext != ".cpp")) continue;
        std::ifstream in(e.path());
        for (std::string line; std::getline(in, line);) {
            std::smatch m;
            if (std::regex_search(line, m, include_line)) out.emplace_back(e.path().filename().string(), m[1].str());
        }
    }
    return out;
}

bool allowed(const std::string& include, const std::vector<std::string>& layers) {
    for (const auto& l : layers)
        if (include.rfind(l + "/", 0) == 0) return true;
    return false;
}

void expect_only(const std::string& layer, const std::vector<std::string>& may_include) {
    const auto includes = project_includes(kSrc / layer);
    ASSERT_FALSE(includes.empty()) << "no sources read under " << (kSrc / layer);
    for (const auto& [file, inc] : includes)
        EXPECT_TRUE(allowed(inc, may_include)) << "src/" << layer << "/" << file << " includes \"" << inc
                                               << "\": a layer above " << layer << "/";
}

}  // namespace

TEST(Layering, HostIncludesOnlyHostCpuidAndUtil) { expect_only("host", {"host", "cpuid", "util"}); }

TEST(Layering, CoreKnowsNoCheckFixSmokeRendererOrCli) { expect_only("core", {"core", "host", "cpuid", "util"}); }

// The scan itself must see an upward include, or the two tests above prove nothing.
TEST(Layering, TheScanSeesIncludesOfTheLayersAbove) {
    bool cli_includes_core = false;
    for (const auto& [file, inc] : project_includes(kSrc / "cli"))
        if (inc.rfind("core/", 0) == 0) cli_includes_core = true;
    EXPECT_TRUE(cli_includes_core);
    EXPECT_FALSE(allowed("fixes/fix.hpp", {"core", "host", "cpuid", "util"}));
    EXPECT_FALSE(allowed("smoke/report.hpp", {"core", "host", "cpuid", "util"}));
}
TEST(Layering, WatchKnowsNoCliFixOrSmoke) { expect_only("watch", {"watch", "core", "host", "output", "cpuid", "util"}); }
