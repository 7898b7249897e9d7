// The man page and README are part of the interface: every check id and
// subcommand must be documented there.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli/doc_lists.hpp"
#include "support/spawn.hpp"
#include "core/check.hpp"
#include "fixes/fix.hpp"

namespace {

std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// roff escapes hyphens as "\-".
std::string unroff(std::string s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '-') continue;
        out += s[i];
    }
    return out;
}

// The subcommands `kvmready --help` lists (hidden ones are not listed).
std::vector<std::string> subcommands() {
    const auto r = kvmready::testsupport::run_captured({KVMREADY_BINARY, "--help"}, 30000);
    std::vector<std::string> names;
    std::istringstream in(r.out);
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        if (line == "Subcommands:") { inside = true; continue; }
        if (!inside) continue;
        if (line.empty()) break;
        std::istringstream words(line);
        std::string name;
        if (words >> name) names.push_back(name);
    }
    return names;
}

}  // namespace

TEST(Docs, ManPageDocumentsEveryCheckAndCommand) {
    const std::string man = unroff(slurp(KVMREADY_SOURCE_DIR "/man/kvmready.1"));
    ASSERT_FALSE(man.empty());
    for (const auto& c : kvmready::registry()) EXPECT_NE(man.find(c.id), std::string::npos) << c.id << " missing from man/kvmready.1";
    const auto commands = subcommands();
    EXPECT_GE(commands.size(), 6u) << "kvmready --help lists too few subcommands";
    for (const auto& cmd : commands) EXPECT_NE(man.find("kvmready " + cmd), std::string::npos) << "kvmready " << cmd << " missing from man/kvmready.1";
    for (const char* code : {".B 0", ".B 1", ".B 2", ".B 3", ".B 64", ".B 65", ".B 66", ".B 69", ".B 70", ".B 75", ".B 77"})
        EXPECT_NE(man.find(code), std::string::npos) << "exit status " << code;
}

TEST(Docs, ReadmeListsEveryCheck) {
    const std::string readme = slurp(KVMREADY_SOURCE_DIR "/README.md");
    for (const auto& c : kvmready::registry())
        EXPECT_NE(readme.find(std::string("`") + c.id + "`"), std::string::npos) << c.id << " missing from README.md";
}

TEST(Docs, EveryFixIsInTheManPageAndReadme) {
    const std::string man = unroff(slurp(KVMREADY_SOURCE_DIR "/man/kvmready.1"));
    const std::string readme = slurp(KVMREADY_SOURCE_DIR "/README.md");
    for (const auto& f : kvmready::fix::registry()) {
        EXPECT_NE(man.find(f.id), std::string::npos) << f.id << " missing from man/kvmready.1";
        EXPECT_NE(readme.find(std::string("`") + f.id + "`"), std::string::npos) << f.id << " missing from README.md";
    }
}

// The lists are generated from the registries (cmake --build build --target
// docs): the committed text must be what the generator makes of it now.
TEST(Docs, GeneratedListsMatchTheRegistries) {
    const std::string readme = slurp(KVMREADY_SOURCE_DIR "/README.md");
    const std::string man = slurp(KVMREADY_SOURCE_DIR "/man/kvmready.1");
    ASSERT_FALSE(readme.empty());
    ASSERT_FALSE(man.empty());
    EXPECT_EQ(kvmready::cli::regenerate_readme(readme), readme)
        << "README.md's check/fix lists drifted from the registries: run `cmake --build build --target docs`";
    EXPECT_EQ(kvmready::cli::regenerate_man(man), man)
        << "man/kvmready.1's check/fix lists drifted from the registries: run `cmake --build build --target docs`";
}

// The drift test above would pass on a generator that copies its input: a
// registry entry missing from the marked text must come back.
TEST(Docs, GeneratorRestoresAMissingCheck) {
    const std::string readme = slurp(KVMREADY_SOURCE_DIR "/README.md");
    const std::string row = "| `kvm.api` |";
    const size_t at = readme.find(row);
    ASSERT_NE(at, std::string::npos);
    std::string cut = readme;
    cut.erase(at, cut.find('\n', at) - at + 1);
    EXPECT_EQ(cut.find(row), std::string::npos);
    EXPECT_NE(kvmready::cli::regenerate_readme(cut).find(row), std::string::npos);
    EXPECT_THROW(kvmready::cli::regenerate_readme("no markers here\n"), std::exception);
}
