// The bash, zsh and fish completion scripts (`kvmready __completion SHELL`,
// src/cli/completion.cpp), run by the real shells: bash's function called as
// bash-completion calls it (COMP_WORDS/COMP_CWORD), fish's `complete -C`,
// zsh's parser and compinit. And against drift: every option each
// subcommand's --help shows is offered, with its fixed values.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "support/guest_vm.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace {

using kvmready::testsupport::run_captured;
using kvmready::testsupport::nonempty_lines;
using kvmready::testsupport::TempDir;
namespace fs = std::filesystem;

const std::vector<std::string> kSubcommands = {"check", "explain", "cpuid", "report", "smoke", "fix", "watch"};

std::string script(const std::string& shell) {
    auto r = run_captured({KVMREADY_BINARY, "__completion", shell}, 30000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += s + " ";
    return out;
}

// The scripts written to a directory of the test's own.
struct Scripts {
    TempDir dir{"kvmready-completion"};
    fs::path bash = dir.path / "kvmready", zsh = dir.path / "_kvmready", fish = dir.path / "kvmready.fish";
    Scripts() {
        std::ofstream(bash) << script("bash");
        std::ofstream(zsh) << script("zsh");
        std::ofstream(fish) << script("fish");
    }
};

// What bash's _kvmready puts in COMPREPLY for the command line `words`, the
// last word being completed, run in `cwd`.
std::vector<std::string> bash_complete(const fs::path& file, const std::vector<std::string>& words, const std::string& cwd = "/") {
    static const std::string bash = kvmready::testsupport::find_in_path("bash").value_or("/bin/bash");
    std::vector<std::string> argv = {bash, "--norc", "--noprofile", "-c",
                                     "source \"$1\" || exit 90; shift; COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                                     "COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}; _kvmready || exit 91; "
                                     "printf '%s\\n' \"${COMPREPLY[@]}\"",
                                     "bash", file.string()};
    argv.insert(argv.end(), words.begin(), words.end());
    auto r = run_captured(argv, 30000, cwd);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return nonempty_lines(r.out);
}

// Options as --help shows them: "  -o,--output TEXT  ..." -> -o, --output.
std::vector<std::string> help_options(const std::string& help) {
    std::vector<std::string> out;
    static const std::regex opt(R"(^\s{1,4}((?:-[A-Za-z0-9],)*-{1,2}[A-Za-z0-9][A-Za-z0-9-]*(?:,-{1,2}[A-Za-z0-9][A-Za-z0-9-]*)*))");
    for (const auto& l : nonempty_lines(help)) {
        std::smatch m;
        if (!std::regex_search(l, m, opt)) continue;
        std::string names = m[1];
        std::stringstream ss(names);
        for (std::string n; std::getline(ss, n, ',');) out.push_back(n);
    }
    return out;
}

// Fixed value sets as --help shows them: "--color TEXT:{auto,always,never}".
std::map<std::string, std::vector<std::string>> help_sets(const std::string& help) {
    std::map<std::string, std::vector<std::string>> out;
    static const std::regex set(R"((--[A-Za-z0-9-]+) [A-Z]+:\{([^}]*)\})");
    for (const auto& l : nonempty_lines(help)) {
        std::smatch m;
        if (!std::regex_search(l, m, set)) continue;
        std::stringstream ss(m[2].str());
        for (std::string v; std::getline(ss, v, ',');) out[m[1]].push_back(v);
    }
    return out;
}

std::string help_of(const std::string& sub) {
    auto r = run_captured({KVMREADY_BINARY, sub, "--help"}, 30000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
}

}  // namespace

// The build's completions/ (what the package installs) holds what this binary prints.
TEST(CompletionScripts, BuildWroteWhatTheBinaryPrints) {
    const fs::path dir = fs::path(KVMREADY_BINARY).parent_path() / "completions";
    for (const auto& [shell, name] : std::vector<std::pair<std::string, std::string>>{
             {"bash", "kvmready"}, {"zsh", "_kvmready"}, {"fish", "kvmready.fish"}}) {
        std::ifstream in(dir / name);
        ASSERT_TRUE(in) << (dir / name) << " missing: the completions target did not run";
        std::stringstream ss;
        ss << in.rdbuf();
        EXPECT_EQ(ss.str(), script(shell)) << name << " is stale";
    }
    auto bad = run_captured({KVMREADY_BINARY, "__completion", "tcsh"}, 30000);
    EXPECT_EQ(bad.exit_code, 64);
    EXPECT_NE(bad.err.find("tcsh"), std::string::npos) << bad.err;
}

TEST(CompletionScripts, BashCompletesSubcommandsOptionsAndValues) {
    Scripts s;
    auto subs = bash_complete(s.bash, {"kvmready", ""});
    for (const auto& sub : kSubcommands) EXPECT_TRUE(has(subs, sub)) << sub << " in " << joined(subs);
    EXPECT_FALSE(has(subs, "__doc-lists"));
    EXPECT_FALSE(has(subs, "__completion"));
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "ch"}), std::vector<std::string>{"check"});
    EXPECT_TRUE(has(bash_complete(s.bash, {"kvmready", "--v"}), "--version"));

    auto opts = bash_complete(s.bash, {"kvmready", "check", "--co"});
    EXPECT_TRUE(has(opts, "--color") && has(opts, "--connect")) << joined(opts);
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "check", "--color", ""}), (std::vector<std::string>{"auto", "always", "never"}));
    // --opt=value: bash hands the '=' over as a word of its own.
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "smoke", "--accel", "=", "t"}), std::vector<std::string>{"tcg"});

    // Check ids and categories after check; ids only after explain.
    auto ids = bash_complete(s.bash, {"kvmready", "check", "kvm.a"});
    EXPECT_TRUE(has(ids, "kvm.access") && has(ids, "kvm.api")) << joined(ids);
    auto all = bash_complete(s.bash, {"kvmready", "check", "--json", ""});
    EXPECT_TRUE(has(all, "kvm") && has(all, "cpu.virt-extensions") && has(all, "net")) << joined(all);
    auto explain = bash_complete(s.bash, {"kvmready", "explain", "kvm"});
    EXPECT_TRUE(has(explain, "kvm.access"));
    EXPECT_FALSE(has(explain, "kvm")) << "a category is no check id";

    // Fix ids after --only, also after a comma.
    auto fixes = bash_complete(s.bash, {"kvmready", "fix", "--only", ""});
    ASSERT_FALSE(fixes.empty());
    for (const auto& f : fixes) EXPECT_EQ(f.find(' '), std::string::npos) << f;
    auto second = bash_complete(s.bash, {"kvmready", "fix", "--only", fixes[0] + ","});
    EXPECT_TRUE(has(second, fixes[0] + "," + fixes.back())) << joined(second);
}

TEST(CompletionScripts, BashCompletesPaths) {
    Scripts s;
    TempDir cwd("kvmready-completion-cwd");
    fs::create_directory(cwd.path / "dir-a");
    std::ofstream(cwd.path / "dump.txt") << "x";
    const std::string d = cwd.path.string();
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "check", "--root", "d"}, d), std::vector<std::string>{"dir-a"});
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "check", "--cpuid-dump", "du"}, d), std::vector<std::string>{"dump.txt"});
    EXPECT_EQ(bash_complete(s.bash, {"kvmready", "report", "-o", "du"}, d), std::vector<std::string>{"dump.txt"});
    auto from = bash_complete(s.bash, {"kvmready", "check", "--from", "d"}, d);
    EXPECT_TRUE(has(from, "dump.txt") && has(from, "dir-a")) << joined(from);
    // A free value (a URI) completes to nothing rather than to options.
    EXPECT_TRUE(bash_complete(s.bash, {"kvmready", "check", "--connect", ""}, d).empty());
}

// Drift: what --help shows is what completes, for every subcommand.
TEST(CompletionScripts, BashOffersEveryOptionAndFixedValueOfEveryHelp) {
    Scripts s;
    for (const auto& sub : kSubcommands) {
        const std::string help = help_of(sub);
        auto shown = help_options(help);
        ASSERT_GT(shown.size(), 1u) << sub << ": no options parsed from --help:\n" << help;
        auto offered = bash_complete(s.bash, {"kvmready", sub, "-"});
        for (const auto& o : shown) EXPECT_TRUE(has(offered, o)) << "kvmready " << sub << " " << o << " not completed";
        for (const auto& [opt, values] : help_sets(help))
            EXPECT_EQ(bash_complete(s.bash, {"kvmready", sub, opt, ""}), values) << "kvmready " << sub << " " << opt;
    }
}

TEST(CompletionScripts, FishParsesAndCompletes) {
    auto fish = kvmready::testsupport::find_in_path("fish");
    if (!fish) GTEST_SKIP() << "fish is not installed (scripts/dev.sh test installs it)";
    Scripts s;
    auto parse = run_captured({*fish, "--no-config", "-n", s.fish.string()}, 30000);
    ASSERT_EQ(parse.exit_code, 0) << parse.err;
    auto complete = [&](const std::string& line) {
        auto r = run_captured({*fish, "--no-config", "-c", "source $argv[1]; and complete -C $argv[2]", s.fish.string(), line}, 30000);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.err, "");
        std::vector<std::string> words;
        for (const auto& l : nonempty_lines(r.out)) words.push_back(l.substr(0, l.find('\t')));
        return words;
    };
    EXPECT_EQ(complete("kvmready ch"), std::vector<std::string>{"check"});
    auto color = complete("kvmready check --color ");
    EXPECT_EQ(std::set<std::string>(color.begin(), color.end()), (std::set<std::string>{"auto", "always", "never"}));
    auto ids = complete("kvmready explain kvm.a");
    EXPECT_TRUE(has(ids, "kvm.access") && has(ids, "kvm.api")) << joined(ids);
    auto cats = complete("kvmready check ");
    EXPECT_TRUE(has(cats, "kvm") && has(cats, "kvm.access")) << joined(cats);
    auto fixes = complete("kvmready fix --only ");
    ASSERT_FALSE(fixes.empty());
    auto opts = complete("kvmready fix --");
    EXPECT_TRUE(has(opts, "--only") && has(opts, "--apply")) << joined(opts);
    EXPECT_FALSE(has(complete("kvmready "), "__completion"));
}

// zsh completes only inside its line editor: an interactive zsh on a
// pseudo-terminal (zsh/zpty) with compinit, the line typed and Tab pressed;
// compadd wrapped to print what it is given.
const char* const kZshDriver = R"(zmodload zsh/zpty || exit 90
zpty z zsh -f -i
zpty -w z "PROMPT='%%'; HOME=$2; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -d $2/zcompdump"
zpty -w z 'compadd() { local -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do print -r -- "<completion>$h"; done; builtin compadd "$@"; }'
zpty -w z 'zstyle ":completion:*" list-prompt ""; unsetopt AUTO_MENU AUTO_LIST; bindkey "^I" complete-word'
# Keys typed while zle sets up the terminal can be flushed: wait for the
# prompt, and try the line again (at most 3 times) when nothing came back.
for try in 1 2 3; do
  zpty -w z "print -r -- ZPTY-READY$try"
  zpty -r z out "*ZPTY-READY$try*ZPTY-READY$try*%"
  zpty -w -n z "$3"$'\t'
  zpty -w -n z $'\C-u'
  zpty -w z "print -r -- ZPTY''-DONE$try"
  zpty -r z out "*ZPTY-DONE$try*"
  got=$(print -r -- "$out" | tr -d '\r\033' | grep -o '<completion>[^<]*' | sed 's/<completion>//' | sort -u)
  [[ -n $got ]] && break
done
print -r -- "$got"
zpty -d z
)";

TEST(CompletionScripts, ZshParsesAndCompletesInItsLineEditor) {
    auto zsh = kvmready::testsupport::find_in_path("zsh");
    if (!zsh) GTEST_SKIP() << "zsh is not installed (scripts/dev.sh test installs it)";
    Scripts s;
    auto parse = run_captured({*zsh, "-n", s.zsh.string()}, 30000);
    ASSERT_EQ(parse.exit_code, 0) << parse.err;
    TempDir home("kvmready-zsh-home");
    std::ofstream(home.path / "drive.zsh") << kZshDriver;
    auto complete = [&](const std::string& line) {
        auto r = run_captured({*zsh, "-f", (home.path / "drive.zsh").string(), s.dir.path.string(), home.path.string(), line}, 60000);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return nonempty_lines(r.out);
    };
    EXPECT_EQ(complete("kvmready ch"), std::vector<std::string>{"check"});
    EXPECT_EQ(complete("kvmready check --color "), (std::vector<std::string>{"always", "auto", "never"}));
    auto ids = complete("kvmready explain kvm.a");
    EXPECT_TRUE(has(ids, "kvm.access") && has(ids, "kvm.api")) << joined(ids);
    auto sel = complete("kvmready check cp");
    EXPECT_TRUE(has(sel, "cpu") && has(sel, "cpu.virt-extensions")) << joined(sel);
    auto opts = complete("kvmready fix --ap");
    EXPECT_TRUE(has(opts, "--apply")) << joined(opts);
    auto fixes = complete("kvmready fix --only kvm.mod");
    EXPECT_TRUE(has(fixes, "kvm.modules-load")) << joined(fixes);
}
