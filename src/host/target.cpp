#include "host/target.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "host/unique_fd.hpp"

namespace kvmready::host {

namespace {

std::string join_argv(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
    return out;
}

class FsTarget final : public Target {
public:
    explicit FsTarget(std::string root) : root_(std::move(root)) {}
    [[nodiscard]] std::string root() const override { return root_; }
    std::optional<std::string> read_file(const std::string& path, FileMeta* meta) override { return read_nofollow(root_, path, meta); }
    void write_file(const std::string& path, const std::string& content, const FileMeta& meta, const std::string& temp_name) override {
        write_atomic(root_, path, content, meta, temp_name);
    }
    void remove_file(const std::string& path) override { remove_nofollow(root_, path); }
    void remove_temp(const std::string& path, const std::string& temp_name) override { host::remove_temp(root_, path, temp_name); }
    bool exists(const std::string& path) override { return exists_nofollow(root_ + path); }
    int remove_empty_dir(const std::string& path) override {
        const int e = host::remove_empty_dir(root_ + path);
        return e == ENOENT ? 0 : e;
    }
    std::string read_value(const std::string& path) override { return host::read_value(root_ + path); }
    void write_value(const std::string& path, const std::string& value) override { host::write_value(root_ + path, value); }
    FileMeta node_meta(const std::string& path) override { return host::node_meta(root_ + path); }
    void set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid) override {
        host::set_node_perms(root_ + path, mode, uid, gid);
    }
    RunResult run(const std::vector<std::string>& argv, int timeout_ms) override { return run_process(argv, timeout_ms); }
    int signal(pid_t pid, int sig) override { return send_signal(pid, sig); }
    bool socket_answers(const std::string& path) override { return unix_socket_answers(path); }

private:
    std::string root_;
};

}  // namespace

std::shared_ptr<Target> make_target(const std::string& root) { return std::make_shared<FsTarget>(root); }

RecordingTarget::RecordingTarget(std::string root) : root_(std::move(root)), reads_(make_target(root_)) {
    run_result.started = true;
    run_result.exit_code = 0;
}

std::optional<std::string> RecordingTarget::read_file(const std::string& path, FileMeta* meta) { return reads_->read_file(path, meta); }

void RecordingTarget::write_file(const std::string& path, const std::string& content, const FileMeta& meta, const std::string&) {
    changes_.push_back(fmt::format("write {} ({} bytes, {:04o} {}:{})", path, content.size(), meta.mode, meta.uid, meta.gid));
}

void RecordingTarget::remove_file(const std::string& path) { changes_.push_back("remove " + path); }
void RecordingTarget::remove_temp(const std::string&, const std::string&) {}
bool RecordingTarget::exists(const std::string& path) { return reads_->exists(path); }
int RecordingTarget::remove_empty_dir(const std::string& path) {
    changes_.push_back("rmdir " + path);
    return 0;
}
std::string RecordingTarget::read_value(const std::string& path) { return reads_->read_value(path); }
void RecordingTarget::write_value(const std::string& path, const std::string& value) { changes_.push_back(fmt::format("set {} = {}", path, value)); }
FileMeta RecordingTarget::node_meta(const std::string& path) { return reads_->node_meta(path); }
void RecordingTarget::set_node_perms(const std::string& path, unsigned mode, uint32_t uid, uint32_t gid) {
    changes_.push_back(fmt::format("perms {} {:04o} {}:{}", path, mode, uid, gid));
}
RunResult RecordingTarget::run(const std::vector<std::string>& argv, int) {
    changes_.push_back("run " + join_argv(argv));
    return run_result;
}
int RecordingTarget::signal(pid_t pid, int sig) {
    changes_.push_back(fmt::format("signal {} {}", pid, sig));
    return 0;
}
bool RecordingTarget::socket_answers(const std::string& path) { return reads_->socket_answers(path); }

int send_signal(pid_t pid, int sig) { return ::kill(pid, sig) == 0 ? 0 : errno; }

void kill_self() {
    ::kill(::getpid(), SIGKILL);
    for (;;) ::pause();
}

bool unix_socket_answers(const std::string& path) {
    sockaddr_un a {};
    if (path.empty() || path.size() >= sizeof a.sun_path) return false;
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.ok()) return false;
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

}  // namespace kvmready::host
