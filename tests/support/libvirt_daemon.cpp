// See libvirt_daemon.hpp. Children are started with fork+exec (argv only, no
// shell) because they must enter namespaces between the two; everything the
// child does before exec is a plain system call on data prepared beforehand.
#include "support/libvirt_daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

extern char** environ;

namespace kvmready::testsupport {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPrefix = "kvmready-lv-";      // network namespaces
constexpr const char* kDirPrefix = "kvmready-libvirt-";  // directories in /tmp

std::string errno_text(int e) { return std::strerror(e); }

bool alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

std::string which(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    // Daemons live in sbin, which a non-login PATH may lack.
    p += ":/usr/sbin:/sbin";
    std::istringstream in(p);
    for (std::string dir; std::getline(in, dir, ':');) {
        if (dir.empty()) continue;
        const std::string full = dir + "/" + name;
        if (::access(full.c_str(), X_OK) == 0) return full;
    }
    return "";
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

ino_t ns_inode(const std::string& path, dev_t* dev) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    if (dev) *dev = st.st_dev;
    return st.st_ino;
}

// Every process whose network namespace is the one at ns_path.
std::vector<pid_t> pids_in_netns(const std::string& ns_path) {
    dev_t dev = 0;
    const ino_t ino = ns_inode(ns_path, &dev);
    std::vector<pid_t> out;
    if (!ino) return out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        dev_t d = 0;
        if (ns_inode("/proc/" + name + "/ns/net", &d) == ino && d == dev) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

void kill_netns_processes(const std::string& ns_path) {
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    for (;;) {
        auto pids = pids_in_netns(ns_path);
        if (pids.empty() || Clock::now() > deadline) return;
        for (pid_t p : pids) ::kill(p, SIGKILL);
        // Our own children must be reaped to disappear; others are reaped by init.
        for (pid_t p : pids) ::waitpid(p, nullptr, WNOHANG);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void ip_netns_delete(const std::string& name) { (void)host::run_process({"ip", "netns", "delete", name}, 5000); }

// Namespaces and directories left by a test process that was killed before
// its destructors ran: named after its PID, which no longer runs.
void sweep_stale() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator("/run/netns", ec)) {
            const std::string n = e.path().filename();
            if (n.rfind(kPrefix, 0) != 0) continue;
            const pid_t owner = static_cast<pid_t>(std::atol(n.c_str() + std::strlen(kPrefix)));
            if (owner <= 0 || alive(owner)) continue;
            kill_netns_processes(e.path());
            ip_netns_delete(n);
        }
        for (const auto& e : fs::directory_iterator("/tmp", ec)) {
            const std::string n = e.path().filename();
            if (n.rfind(kDirPrefix, 0) != 0) continue;
            const pid_t owner = static_cast<pid_t>(std::atol(n.c_str() + std::strlen(kDirPrefix)));
            if (owner <= 0 || alive(owner)) continue;
            fs::remove_all(e.path(), ec);
        }
    });
}

// Per test process: the QEMU capability cache and the private /dev/kvm node,
// shared by all instances so the cache stays valid (libvirt invalidates it
// when /dev/kvm's ctime changes) and only the first instance pays the probe.
struct Shared {
    std::string dir;
    std::string kvm_node;      // "" when it could not be made
    std::string cache;
    Shared() {
        std::string tmpl = "/tmp/" + std::string(kDirPrefix) + std::to_string(::getpid()) + "-shared-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + errno_text(errno));
        dir = tmpl;
        ::chmod(dir.c_str(), 0711);
        cache = dir + "/cache";
        ::mkdir(cache.c_str(), 0711);
        struct group* g = ::getgrnam("kvm");
        struct stat st {};
        if (g && ::stat("/dev/kvm", &st) == 0 && S_ISCHR(st.st_mode)) {
            const std::string node = dir + "/kvm";
            if (::mknod(node.c_str(), S_IFCHR | 0660, st.st_rdev) == 0 && ::chown(node.c_str(), 0, g->gr_gid) == 0 &&
                ::chmod(node.c_str(), 0660) == 0)
                kvm_node = node;
        }
    }
    ~Shared() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Shared& shared() {
    static Shared s;
    return s;
}

std::atomic<int> g_counter{0};

// What a child does between fork and exec, all prepared by the parent.
struct ChildPlan {
    const char* netns_path = nullptr;
    const char* mntns_path = nullptr;    // join this mount namespace (non-holders)
    bool holder = false;                 // build the mount namespace instead
    std::vector<std::pair<std::string, std::string>> binds;  // source -> target
    std::string kvm_node;
    int out_fd = -1, err_fd = -1;
    bool new_pgrp = false;
    int pin_cpu = -1;                    // sched_setaffinity to this CPU (daemons)
    bool as_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::string exe;
    std::vector<std::string> argv;
};

[[noreturn]] void child_fail(int report_fd, int step) {
    const int code = step * 1000 + errno;
    (void)!::write(report_fd, &code, sizeof code);
    ::_exit(127);
}

[[noreturn]] void run_child(const ChildPlan& p, char* const* argv, int report_fd) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (p.new_pgrp) ::setpgid(0, 0);
    if (p.pin_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(p.pin_cpu, &set);
        ::sched_setaffinity(0, sizeof set, &set);
    }
    int fd = ::open(p.netns_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) child_fail(report_fd, 1);
    ::close(fd);
    if (p.holder) {
        if (::unshare(CLONE_NEWNS) != 0) child_fail(report_fd, 2);
        if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(report_fd, 3);
        // /sys must show this namespace's devices (virbr0), as `ip netns exec` arranges.
        ::umount2("/sys", MNT_DETACH);
        if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, nullptr) != 0) child_fail(report_fd, 4);
        if (::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) child_fail(report_fd, 5);
        ::mkdir("/run/libvirt", 0755);
        ::mkdir("/run/lock", 01777);
        for (const auto& [src, dst] : p.binds)
            if (::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) != 0) child_fail(report_fd, 6);
        if (!p.kvm_node.empty() && ::mount(p.kvm_node.c_str(), "/dev/kvm", nullptr, MS_BIND, nullptr) != 0) child_fail(report_fd, 7);
    } else {
        fd = ::open(p.mntns_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNS) != 0) child_fail(report_fd, 8);
        ::close(fd);
    }
    if (::chdir("/") != 0) child_fail(report_fd, 9);
    if (p.as_user) {
        if (::setgroups(p.groups.size(), p.groups.data()) != 0 || ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0) child_fail(report_fd, 10);
    }
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(p.out_fd >= 0 ? p.out_fd : devnull, 1);
    ::dup2(p.err_fd >= 0 ? p.err_fd : devnull, 2);
    ::execve(p.exe.c_str(), argv, environ);
    child_fail(report_fd, 11);
}

int first_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int i = 0; i < CPU_SETSIZE; ++i)
        if (CPU_ISSET(i, &set)) return i;
    return -1;
}

const char* step_name(int step) {
    switch (step) {
    case 1: return "setns(network)";
    case 2: return "unshare(mount)";
    case 3: return "make / private";
    case 4: return "mount sysfs";
    case 5: return "mount tmpfs on /run";
    case 6: return "bind mount";
    case 7: return "bind /dev/kvm";
    case 8: return "setns(mount)";
    case 9: return "chdir";
    case 10: return "drop privileges";
    case 11: return "execve";
    }
    return "?";
}

}  // namespace

std::string LibvirtDaemon::unavailable_reason() {
    if (::geteuid() != 0) return "needs root (network and mount namespaces, a system-mode libvirtd)";
    for (const char* tool : {"libvirtd", "virtlogd", "virsh", "ip", "sleep"})
        if (which(tool).empty()) return std::string(tool) + " is not installed (apt-get install libvirt-daemon-system iproute2)";
    for (const char* dir : {"/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"})
        if (!fs::is_directory(dir)) return std::string(dir) + " does not exist (libvirt-daemon-system not installed?)";
    return "";
}

LibvirtDaemon::LibvirtDaemon() : LibvirtDaemon(Options{}) {}

LibvirtDaemon::LibvirtDaemon(Options o) : opt_(std::move(o)) {}

LibvirtDaemon::~LibvirtDaemon() {
    try {
        stop();
    } catch (...) {
    }
    if (netns_created_) ip_netns_delete(netns_);
    if (!base_.empty()) {
        std::error_code ec;
        fs::remove_all(base_, ec);
    }
}

void LibvirtDaemon::prepare_dirs() {
    std::string tmpl = "/tmp/" + std::string(kDirPrefix) + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + errno_text(errno));
    base_ = tmpl;
    ::chmod(base_.c_str(), 0711);  // clients as other users reach the socket through it
    for (const char* d : {"run", "lib", "cache", "log"}) ::mkdir((base_ + "/" + d).c_str(), 0755);
    // As libvirt-daemon-system's package leaves it.
    ::mkdir((base_ + "/lib/images").c_str(), 0711);
    ::chmod((base_ + "/lib/images").c_str(), 0711);
    std::error_code ec;
    fs::copy("/etc/libvirt", base_ + "/etc", fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) throw std::runtime_error("copy /etc/libvirt: " + ec.message());
    // Start from no networks, pools, domains or secrets of this machine.
    const fs::path etc = base_ + "/etc";
    for (const char* sub : {"qemu/networks", "qemu/autostart", "storage", "secrets"}) fs::remove_all(etc / sub, ec);
    for (const auto& e : fs::directory_iterator(etc / "qemu", ec))
        if (e.path().extension() == ".xml") fs::remove(e.path(), ec);
    fs::create_directories(etc / "qemu/networks/autostart", ec);
    for (const auto& [file, text] : opt_.config_append) {
        std::ofstream out(etc / file, std::ios::app);
        out << "\n" << text << "\n";
        if (!out) throw std::runtime_error("cannot append to " + (etc / file).string());
    }
    for (size_t i = 0; i < opt_.private_dirs.size(); ++i) {
        const std::string& dir = opt_.private_dirs[i];
        if (dir.empty() || dir[0] != '/' || !fs::is_directory(dir) || fs::is_symlink(dir))
            throw std::runtime_error("private_dirs: " + dir + " is not an existing directory");
        const std::string copy = private_path(dir);
        ec.clear();
        fs::create_directories(copy, ec);
        fs::copy(dir, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        if (ec) throw std::runtime_error("copy " + dir + ": " + ec.message());
    }
    if (opt_.private_kvm_node) {
        kvm_node_ = shared().kvm_node;
        cache_dir_ = shared().cache;
    } else {
        cache_dir_ = base_ + "/cache";  // another /dev/kvm: keep its cache apart
    }
}

pid_t LibvirtDaemon::spawn_inside(const std::vector<std::string>& argv, int out_fd, int err_fd, bool holder, uid_t uid, gid_t gid,
                                  const std::vector<gid_t>& groups) const {
    ChildPlan p;
    const std::string netns_path = "/run/netns/" + netns_;
    const std::string mntns_path = "/proc/" + std::to_string(holder_) + "/ns/mnt";
    p.netns_path = netns_path.c_str();
    p.mntns_path = mntns_path.c_str();
    p.holder = holder;
    if (holder) {
        p.binds = {{base_ + "/run", "/run/libvirt"},
                   {base_ + "/etc", "/etc/libvirt"},
                   {base_ + "/lib", "/var/lib/libvirt"},
                   {cache_dir_, "/var/cache/libvirt"},
                   {base_ + "/log", "/var/log/libvirt"}};
        for (const auto& dir : opt_.private_dirs) p.binds.emplace_back(private_path(dir), dir);
        p.kvm_node = kvm_node_;
    }
    p.out_fd = out_fd;
    p.err_fd = err_fd;
    p.new_pgrp = true;
    // libvirt's QEMU capability cache is keyed on the host CPUID it reads in
    // place, APIC IDs included: a daemon that starts on another CPU than
    // the one that filled the cache probes QEMU again (~8 s). Daemons run on
    // one CPU so instances share the cache; clients are left alone.
    if (argv.at(0) == "libvirtd" || argv.at(0) == "virtlogd") p.pin_cpu = first_cpu();
    p.as_user = !groups.empty() || uid != 0;
    p.uid = uid;
    p.gid = gid;
    p.groups = groups;
    p.exe = which(argv.at(0));
    if (p.exe.empty()) throw std::runtime_error(argv[0] + ": not found");
    p.argv = argv;
    std::vector<char*> cargv;
    for (auto& a : p.argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text(errno));
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork: " + errno_text(errno));
    if (pid == 0) {
        ::close(report[0]);
        run_child(p, cargv.data(), report[1]);
    }
    ::close(report[1]);
    int code = 0;
    ssize_t n;
    do n = ::read(report[0], &code, sizeof code);
    while (n < 0 && errno == EINTR);
    ::close(report[0]);
    if (n == static_cast<ssize_t>(sizeof code)) {
        ::waitpid(pid, nullptr, 0);
        throw std::runtime_error(std::string("starting ") + argv[0] + " in namespace " + netns_ + ": " + step_name(code / 1000) +
                                 " failed: " + errno_text(code % 1000));
    }
    return pid;
}

void LibvirtDaemon::start() {
    if (libvirtd_ > 0) return;
    if (auto why = unavailable_reason(); !why.empty()) throw std::runtime_error(why);
    sweep_stale();
    if (base_.empty()) prepare_dirs();
    if (!netns_created_) {
        netns_ = kPrefix + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
        auto r = host::run_process({"ip", "netns", "add", netns_}, 5000);
        if (r.exit_code != 0) throw std::runtime_error("ip netns add " + netns_ + ": " + r.err + r.error);
        netns_created_ = true;
        (void)host::run_process({"ip", "-n", netns_, "link", "set", "lo", "up"}, 5000);
    }
    holder_ = spawn_inside({"sleep", "infinity"}, -1, -1, true, 0, 0, {});
    auto log_fd = [&](const char* name) {
        int fd = ::open((base_ + "/log/" + name).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) throw std::runtime_error(std::string("open log: ") + errno_text(errno));
        return fd;
    };
    int vfd = log_fd("virtlogd.stderr");
    virtlogd_ = spawn_inside({"virtlogd"}, vfd, vfd, false, 0, 0, {});
    ::close(vfd);
    int lfd = log_fd("libvirtd.stderr");
    libvirtd_ = spawn_inside({"libvirtd"}, lfd, lfd, false, 0, 0, {});
    ::close(lfd);
    wait_for_socket();
    if (opt_.warm_up) {
        auto r = virsh({"version"}, 60000);
        if (r.exit_code != 0) throw std::runtime_error("virsh version against the new daemon failed: " + r.err + r.error + "\n" + log_tail());
    }
}

void LibvirtDaemon::wait_for_socket() {
    const auto deadline = Clock::now() + std::chrono::milliseconds(opt_.start_timeout_ms);
    const std::string path = socket_path();
    while (Clock::now() < deadline) {
        int st = 0;
        if (::waitpid(libvirtd_, &st, WNOHANG) == libvirtd_) {
            libvirtd_ = -1;
            throw std::runtime_error("libvirtd exited during startup (status " + std::to_string(st) + "):\n" + log_tail());
        }
        sockaddr_un a {};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        if (fd >= 0) ::close(fd);
        if (ok) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("libvirtd did not create " + path + " within " + std::to_string(opt_.start_timeout_ms) + " ms:\n" + log_tail());
}

namespace {

void terminate_child(pid_t& pid, int grace_ms) {
    if (pid <= 0) return;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::milliseconds(grace_ms);
    while (Clock::now() < deadline) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) {
            pid = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
}

}  // namespace

void LibvirtDaemon::stop() {
    if (paused_) resume();
    terminate_child(libvirtd_, 3000);
    terminate_child(virtlogd_, 3000);
    sweep_namespace();
    if (holder_ > 0) {
        ::kill(holder_, SIGKILL);
        ::waitpid(holder_, nullptr, 0);
        holder_ = -1;
    }
}

void LibvirtDaemon::sweep_namespace() {
    if (netns_created_) kill_netns_processes("/run/netns/" + netns_);
}

void LibvirtDaemon::kill_libvirtd() {
    if (libvirtd_ <= 0) return;
    ::kill(libvirtd_, SIGKILL);
    ::waitpid(libvirtd_, nullptr, 0);
    libvirtd_ = -1;
    paused_ = false;
}

void LibvirtDaemon::pause() {
    if (libvirtd_ <= 0 || ::kill(libvirtd_, SIGSTOP) != 0) return;
    paused_ = true;
    // kill() returns before the group stop completes: wait until the kernel says so.
    const std::string stat = "/proc/" + std::to_string(libvirtd_) + "/stat";
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (Clock::now() < deadline) {
        const std::string t = read_text(stat);
        const auto p = t.rfind(')');
        if (p != std::string::npos && p + 2 < t.size() && t[p + 2] == 'T') return;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

void LibvirtDaemon::resume() {
    if (libvirtd_ > 0) ::kill(libvirtd_, SIGCONT);
    paused_ = false;
}

std::string LibvirtDaemon::private_path(const std::string& dir) const {
    for (size_t i = 0; i < opt_.private_dirs.size(); ++i)
        if (opt_.private_dirs[i] == dir) return base_ + "/private/" + std::to_string(i);
    return "";
}

std::string LibvirtDaemon::log_tail(size_t max_bytes) const {
    std::string out;
    for (const char* f : {"libvirtd.stderr", "libvirtd.log"}) {
        std::string t = read_text(base_ + "/log/" + f);
        if (t.size() > max_bytes) t = "..." + t.substr(t.size() - max_bytes);
        if (!t.empty()) out += std::string("--- ") + f + "\n" + t;
    }
    return out;
}

host::RunResult LibvirtDaemon::virsh(const std::vector<std::string>& args, int timeout_ms) const {
    std::vector<std::string> argv = {"virsh", "-q", "-c", uri()};
    argv.insert(argv.end(), args.begin(), args.end());
    return host::run_process(argv, timeout_ms);
}

std::string LibvirtDaemon::ensure_default_network_and_pool() const {
    auto must = [this](const std::vector<std::string>& args) {
        const auto r = virsh(args);
        return r.exit_code == 0 ? std::string() : fmt::format("virsh {} failed: {}{}", fmt::join(args, " "), r.err, r.error);
    };
    std::string e;
    if (virsh({"net-info", "default"}).exit_code != 0 && !(e = must({"net-define", "/usr/share/libvirt/networks/default.xml"})).empty()) return e;
    if (virsh({"net-info", "default"}).out.find("Active:         no") != std::string::npos && !(e = must({"net-start", "default"})).empty()) return e;
    if (virsh({"pool-info", "default"}).exit_code != 0) {
        if (!(e = must({"pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"})).empty()) return e;
        if (!(e = must({"pool-build", "default"})).empty()) return e;
    }
    if (virsh({"pool-info", "default"}).out.find("running") == std::string::npos) return must({"pool-start", "default"});
    return "";
}

host::RunResult LibvirtDaemon::run_inside(const std::vector<std::string>& argv, int timeout_ms, const std::string& as_user,
                                         const std::vector<gid_t>& extra_groups) const {
    host::RunResult r;
    if (holder_ <= 0) {
        r.error = "the daemon's namespaces are not running";
        return r;
    }
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    if (!as_user.empty()) {
        passwd pw {}, *res = nullptr;
        std::vector<char> buf(16384);
        if (::getpwnam_r(as_user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res) {
            r.error = "no such user: " + as_user;
            return r;
        }
        uid = pw.pw_uid;
        gid = pw.pw_gid;
        int n = 64;
        groups.resize(static_cast<size_t>(n));
        if (::getgrouplist(as_user.c_str(), gid, groups.data(), &n) < 0) {
            groups.resize(static_cast<size_t>(n));
            ::getgrouplist(as_user.c_str(), gid, groups.data(), &n);
        }
        groups.resize(static_cast<size_t>(n));
        groups.insert(groups.end(), extra_groups.begin(), extra_groups.end());
    }
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
        r.error = "pipe: " + errno_text(errno);
        return r;
    }
    pid_t pid = -1;
    try {
        pid = spawn_inside(argv, out[1], err[1], false, uid, gid, groups);
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
        ::close(out[0]);
        ::close(err[0]);
        return r;
    }
    r.started = true;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::array<pollfd, 2> fds = {pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[8192];
    while (open_fds > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            r.timed_out = true;
            break;
        }
        if (::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    if (r.timed_out) ::kill(-pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::vector<std::string> split_command(const std::string& cmd) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false;
    for (size_t i = 0; i < cmd.size(); ++i) {
        const char c = cmd[i];
        if (c == '\'') {
            const size_t end = cmd.find('\'', i + 1);
            if (end == std::string::npos) return {};
            cur += cmd.substr(i + 1, end - i - 1);
            i = end;
            in_word = true;
        } else if (c == '"') {
            size_t j = i + 1;
            for (; j < cmd.size() && cmd[j] != '"'; ++j) {
                if (cmd[j] == '$' || cmd[j] == '`') return {};
                if (cmd[j] == '\\' && j + 1 < cmd.size()) ++j;
                cur += cmd[j];
            }
            if (j >= cmd.size()) return {};
            i = j;
            in_word = true;
        } else if (c == '\\' && i + 1 < cmd.size()) {
            cur += cmd[++i];
            in_word = true;
        } else if (std::isspace(static_cast<unsigned char>(c))) {
            if (in_word) out.push_back(cur);
            cur.clear();
            in_word = false;
        } else if (std::strchr("|&;<>()$`*?[#~", c)) {
            return {};  // needs a shell
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (in_word) out.push_back(cur);
    return out;
}

}  // namespace kvmready::testsupport
