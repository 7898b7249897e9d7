#include "host/target.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "host/libvirt_client.hpp"
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
    Spawned spawn_piped(const std::vector<std::string>& argv) override { return host::spawn_piped(argv); }

    std::optional<std::string> make_temp_dir(const std::string& parent, const std::string& prefix, int* err) override {
        return host::make_temp_dir(parent, prefix, err);
    }
    int make_dir(const std::string& path, unsigned mode) override { return host::make_dir(path, mode); }
    void remove_tree(const std::string& path) override { host::remove_tree(path); }
    int remove_path(const std::string& path) override { return host::remove_path(path); }
    void copy_file(const std::string& from, const std::string& to, unsigned mode) override { host::copy_file(from, to, mode); }
    void create_empty_file(const std::string& path, unsigned mode) override { host::create_empty_file(path, mode); }
    void create_disk_image(const std::string& path, const std::string& head, size_t size) override {
        host::create_disk_image(path, head, size);
    }
    bool replace_file(const std::string& path, const std::string& data, unsigned mode, std::string* error) override {
        return host::replace_file(path, data, mode, error);
    }
    std::unique_ptr<PendingWrite> create_file(const std::string& path) override;
    int make_dirs(const std::string& path) override { return host::make_dirs(path).value(); }
    std::unique_ptr<NewWrite> create_new_file(const std::string& path) override;

    // libvirt.so, as the URI says (the root is not the daemon's).
    std::string libvirt_unavailable() override { return LibvirtConnection::unavailable(); }
    void start_libvirt_event_loop() override { LibvirtConnection::start_event_loop(); }
    std::unique_ptr<LibvirtSession> open_libvirt(const std::string& uri, LibvirtError* error) override {
        return LibvirtConnection::open(uri, error);
    }

private:
    std::string root_;
};

class LiveWrite final : public PendingWrite {
public:
    explicit LiveWrite(const std::string& path) : out_(path), file_(path) {}
    [[nodiscard]] int fd() const override { return file_.fd(); }
    [[nodiscard]] int error() const override { return file_.error(); }
    [[nodiscard]] const std::string& temp_path() const override { return file_.temp_path(); }
    int sync() override { return file_.sync(); }
    int commit(bool replace) override { return file_.commit(replace); }
    uint64_t size() override {
        struct stat st {};
        return ::stat(out_.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    }

private:
    std::string out_;
    PendingFile file_;
};

std::unique_ptr<PendingWrite> FsTarget::create_file(const std::string& path) { return std::make_unique<LiveWrite>(path); }

class LiveNewWrite final : public NewWrite {
public:
    explicit LiveNewWrite(const std::string& path) : file_(path) {}
    [[nodiscard]] int error() const override { return file_.ok() ? 0 : file_.error(); }
    int write(const char* data, size_t n) override { return file_.write(data, n); }

private:
    NewFile file_;
};

std::unique_ptr<NewWrite> FsTarget::create_new_file(const std::string& path) { return std::make_unique<LiveNewWrite>(path); }

}  // namespace

std::shared_ptr<Target> make_target(const std::string& root) { return std::make_shared<FsTarget>(root); }

Target& live_target() {
    static FsTarget live("");
    return live;
}

// An anonymous memory file stands in for the temp file: the writer gets a
// real fd (libarchive writes a bundle through one), nothing reaches a disk.
class RecordedWrite final : public PendingWrite {
public:
    RecordedWrite(RecordingTarget& rec, std::string path)
        : rec_(rec), path_(std::move(path)), temp_(path_ + ".partial-recorded"), fd_(::memfd_create("kvmready-recorded", MFD_CLOEXEC)) {
        if (!fd_.ok()) error_ = errno;
    }
    [[nodiscard]] int fd() const override { return fd_.get(); }
    [[nodiscard]] int error() const override { return error_; }
    [[nodiscard]] const std::string& temp_path() const override { return temp_; }
    int sync() override { return 0; }
    int commit(bool replace) override {
        std::string data;
        char buf[65536];
        ssize_t n = 0;
        for (off_t off = 0; (n = ::pread(fd_.get(), buf, sizeof buf, off)) > 0; off += n) data.append(buf, static_cast<size_t>(n));
        if (n < 0) return errno;
        if (!replace && rec_.reads_->exists(path_)) return EEXIST;
        rec_.changes_.push_back(fmt::format("write {} ({} bytes)", path_, data.size()));
        size_ = data.size();
        rec_.written_[path_] = std::move(data);
        return 0;
    }
    uint64_t size() override { return size_; }

private:
    RecordingTarget& rec_;
    std::string path_, temp_;
    UniqueFd fd_;
    int error_ = 0;
    uint64_t size_ = 0;
};

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
Spawned RecordingTarget::spawn_piped(const std::vector<std::string>& argv) {
    changes_.push_back("spawn " + join_argv(argv));
    Spawned sp;
    sp.error = "recorded";
    return sp;
}
std::optional<std::string> RecordingTarget::make_temp_dir(const std::string& parent, const std::string& prefix, int*) {
    changes_.push_back(fmt::format("mkdtemp {}/{}XXXXXX", parent, prefix));
    return parent + "/" + prefix + "recorded";
}
int RecordingTarget::make_dir(const std::string& path, unsigned mode) {
    changes_.push_back(fmt::format("mkdir {} {:04o}", path, mode));
    return 0;
}
void RecordingTarget::remove_tree(const std::string& path) { changes_.push_back("rmtree " + path); }
int RecordingTarget::remove_path(const std::string& path) {
    changes_.push_back("remove " + path);
    return 0;
}
void RecordingTarget::copy_file(const std::string& from, const std::string& to, unsigned mode) {
    changes_.push_back(fmt::format("copy {} {} {:04o}", from, to, mode));
}
void RecordingTarget::create_empty_file(const std::string& path, unsigned mode) {
    changes_.push_back(fmt::format("create {} {:04o}", path, mode));
    written_[path] = "";
}
void RecordingTarget::create_disk_image(const std::string& path, const std::string& head, size_t size) {
    changes_.push_back(fmt::format("disk {} ({} bytes)", path, size));
    written_[path] = head;
}
bool RecordingTarget::replace_file(const std::string& path, const std::string& data, unsigned mode, std::string*) {
    changes_.push_back(fmt::format("write {} ({} bytes, {:04o})", path, data.size(), mode));
    written_[path] = data;
    return true;
}
std::unique_ptr<PendingWrite> RecordingTarget::create_file(const std::string& path) { return std::make_unique<RecordedWrite>(*this, path); }

int RecordingTarget::make_dirs(const std::string& path) {
    changes_.push_back("mkdir -p " + path);
    return 0;
}

class RecordedNewWrite final : public NewWrite {
public:
    RecordedNewWrite(RecordingTarget& rec, const std::string& path) : rec_(rec), path_(path) {
        if (rec_.written_.count(path_)) {
            error_ = EEXIST;
            return;
        }
        rec_.changes_.push_back("new " + path_);
        rec_.written_[path_];
    }
    [[nodiscard]] int error() const override { return error_; }
    int write(const char* data, size_t n) override {
        if (error_) return error_;
        rec_.written_[path_].append(data, n);
        return 0;
    }

private:
    RecordingTarget& rec_;
    std::string path_;
    int error_ = 0;
};

std::unique_ptr<NewWrite> RecordingTarget::create_new_file(const std::string& path) {
    return std::make_unique<RecordedNewWrite>(*this, path);
}

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
