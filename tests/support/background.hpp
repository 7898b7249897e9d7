// A daemon a test starts and owns (dnsmasq, node_exporter, nrpe): argv
// through posix_spawn (never a shell), stdin /dev/null, stdout and stderr
// appended to a log, stopped by its own PID (SIGTERM, then SIGKILL after
// 5 s) when the test ends or calls stop(). One copy for every test file.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kvmready::testsupport {

class Background {
public:
    Background(const std::vector<std::string>& argv, const std::filesystem::path& log) {
        std::vector<char*> cargv;
        for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    ~Background() { stop(); }
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

    [[nodiscard]] bool started() const { return pid_ > 0; }
    // Still running (not exited early on a bad config or a taken port)? An
    // exited one is reaped.
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exit_code_ = code_of(status);
            return false;
        }
        return true;
    }
    // SIGTERM, then SIGKILL after 5 s. Returns how it ended: its exit code,
    // 128 + signal when a signal killed it, -1 when it never started.
    int stop() {
        if (pid_ <= 0) return exit_code_;
        ::kill(pid_, SIGTERM);
        int status = 0;
        for (int i = 0; i < 500; ++i) {
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return exit_code_ = code_of(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return exit_code_ = code_of(status);
    }

private:
    static int code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
    pid_t pid_ = -1;
    int exit_code_ = -1;
};

// This process's environment with a C locale and no NO_COLOR, so that
// kvmready's output does not depend on who runs the tests.
inline std::vector<std::string> c_locale_env() {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string kv(*e);
        const std::string key = kv.substr(0, kv.find('='));
        if (key == "NO_COLOR" || key == "LANG" || key == "LANGUAGE" || key.rfind("LC_", 0) == 0) continue;
        env.push_back(kv);
    }
    env.emplace_back("LANG=C");
    return env;
}

}  // namespace kvmready::testsupport
