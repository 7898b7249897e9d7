// See ansible_play.hpp.
#include "support/ansible_play.hpp"

#include <chrono>
#include <iostream>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "support/guest_vm.hpp"

extern char** environ;

namespace kvmready::testsupport {

namespace fs = std::filesystem;

std::map<std::string, std::map<std::string, int>> parse_recap(const std::string& out) {
    std::map<std::string, std::map<std::string, int>> r;
    static const std::regex line(R"(^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$)");
    static const std::regex kv(R"((\w+)=(\d+))");
    std::istringstream in(out);
    bool in_recap = false;
    for (std::string l; std::getline(in, l);) {
        if (l.rfind("PLAY RECAP", 0) == 0) in_recap = true;
        std::smatch m;
        if (!in_recap || !std::regex_match(l, m, line)) continue;
        const std::string counts = m[2];
        for (std::sregex_iterator it(counts.begin(), counts.end(), kv), end; it != end; ++it) r[m[1]][(*it)[1]] = std::stoi((*it)[2]);
    }
    return r;
}

fs::path ansible_collections_dir() { return fs::path(KVMREADY_SOURCE_DIR) / "ansible"; }

std::vector<std::string> ansible_env(const fs::path& dir, const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string s = *e;
        if (s.rfind("ANSIBLE_", 0) == 0 || s.rfind("LC_", 0) == 0 || s.rfind("LANG", 0) == 0) continue;
        env.push_back(s);
    }
    const std::vector<std::string> mine{"LC_ALL=C.UTF-8",
                                        "ANSIBLE_COLLECTIONS_PATH=" + ansible_collections_dir().string(),
                                        "ANSIBLE_HOME=" + (dir / "ansible-home").string(),
                                        "ANSIBLE_LOCAL_TEMP=" + (dir / "ansible-tmp").string(),
                                        "ANSIBLE_SSH_CONTROL_PATH_DIR=" + (dir / "cp").string(),
                                        "ANSIBLE_HOST_KEY_CHECKING=False",
                                        "ANSIBLE_PIPELINING=True",
                                        "ANSIBLE_NOCOLOR=1",
                                        "ANSIBLE_FORKS=3",
                                        "ANSIBLE_RETRY_FILES_ENABLED=False",
                                        "ANSIBLE_DEPRECATION_WARNINGS=False",
                                        "ANSIBLE_TIMEOUT=60"};
    env.insert(env.end(), mine.begin(), mine.end());
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

PlayRun run_playbook(const std::vector<std::string>& prefix, const fs::path& inventory, const fs::path& play, const std::vector<std::string>& extra,
                     const fs::path& dir, const std::vector<std::string>& env, int timeout_ms) {
    std::vector<std::string> argv = prefix;
    for (const auto& a : std::vector<std::string>{find_in_path("ansible-playbook").value_or("ansible-playbook"), "-i", inventory.string(), play.string()})
        argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    PlayRun r;
    const auto t0 = std::chrono::steady_clock::now();
    r.c = run_captured(argv, timeout_ms, dir.string(), &env);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.recap = parse_recap(r.c.out);
    std::cout << fmt::format("[ ansible  ] {} {}: {:.1f} s, exit {}\n", play.filename().string(), fmt::join(extra, " "), r.seconds, r.c.exit_code);
    return r;
}

}  // namespace kvmready::testsupport
