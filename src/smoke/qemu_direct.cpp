#include "smoke/qemu_direct.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "host/process.hpp"
#include "host/target.hpp"
#include "smoke/guest_paths.hpp"
#include "smoke/common.hpp"
#include "smoke/serial_protocol.hpp"

namespace kvmready::smoke {

namespace {

// QEMU option values use ',' as separator; a literal comma is doubled.
std::string qemu_escape(const std::string& s) {
    std::string o;
    for (char c : s) o += c == ',' ? std::string(",,") : std::string(1, c);
    return o;
}

std::string first_line(const std::string& s) {
    const auto start = s.find_first_not_of("\r\n ");
    if (start == std::string::npos) return "";
    const auto end = s.find('\n', start);
    return s.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The private run directory: removed with everything in it when the run
// ends, however it ends.
struct RunDir {
    host::Target& sys;
    std::string path;
    ~RunDir() {
        if (!path.empty()) sys.remove_tree(path);
    }
};

std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
    return "unknown";
}

}  // namespace

std::vector<std::string> qemu_direct_argv(const QemuDirectConfig& cfg, const std::string& guest, const std::string& disk_path,
                                          const std::string& mac) {
    const bool pc = cfg.machine != "microvm";
    std::string machine = cfg.machine;
    if (!pc && !cfg.acpi) machine += ",acpi=off";
    std::vector<std::string> a = {cfg.qemu, "-M", machine, "-accel", cfg.accel};
    // TCG's default CPU model is enough; under KVM the host's model avoids
    // CPUID filtering surprises.
    if (cfg.accel == "kvm") a.insert(a.end(), {"-cpu", "host"});
    a.insert(a.end(), {"-m", std::to_string(cfg.memory_mib), "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
                       "-no-reboot", "-kernel", guest, "-serial", "stdio"});
    if (!cfg.append.empty()) a.insert(a.end(), {"-append", cfg.append});
    if (cfg.disk) {
        a.insert(a.end(), {"-drive", "if=none,id=d0,format=raw,readonly=on,file=" + qemu_escape(disk_path), "-device",
                           pc ? "virtio-blk-pci,drive=d0" : "virtio-blk-device,drive=d0"});
    }
    if (cfg.nic) {
        // restrict=on: slirp gives the guest no route to the host or beyond.
        // romfile= skips iPXE's option ROM on pc: nothing here network-boots.
        a.insert(a.end(), {"-netdev", "user,id=n0,restrict=on", "-device",
                           (pc ? "virtio-net-pci,romfile=,netdev=n0,mac=" : "virtio-net-device,netdev=n0,mac=") + mac});
    }
    a.insert(a.end(), cfg.extra_args.begin(), cfg.extra_args.end());
    return a;
}

namespace {

void fail(SmokeStep& s, const std::string& cls, const std::string& msg) {
    if (!s.failure.empty()) return;
    s.failure = cls;
    s.message = msg;
}

// After `done` the guest powers off; a guest that cannot gets this long.
constexpr double kExitGraceMs = 2000;
// After a KVM internal error QEMU pauses the VM forever: keep reading
// just long enough to get the register dump.
constexpr double kKvmErrorGraceMs = 100;

// What watching QEMU saw.
struct Watch {
    SerialLog serial;
    std::string err_text;
    bool kvm_error = false, timed_out = false, no_marker_deadline = false, interrupted = false;
    double kvm_error_at = -1, done_at = -1;
};

// The run directory (private, removed by RunDir) with the nonce disk in it;
// throws std::runtime_error naming what failed.
void prepare_run_dir(const QemuDirectConfig& cfg, host::Target& sys, RunDir& dir, std::string& nonce, std::string& mac,
                     std::string& disk_path) {
    const char* tmp = std::getenv("TMPDIR");
    std::string parent = !cfg.tmp_parent.empty() ? cfg.tmp_parent : (tmp && *tmp ? tmp : "/tmp");
    int err = 0;
    auto made = sys.make_temp_dir(parent, "kvmready-smoke-b-", &err);
    if (!made) throw std::runtime_error(fmt::format("cannot create a directory in {}: {}", parent, std::strerror(err)));
    dir.path = *made;
    nonce = random_hex(32);
    const std::string m = random_hex(3);
    mac = fmt::format("52:54:00:{}:{}:{}", m.substr(0, 2), m.substr(2, 2), m.substr(4, 2));
    if (cfg.disk) {
        disk_path = dir.path + "/disk.raw";
        std::string sector = cfg.sector0 ? *cfg.sector0 : "KVMREADY-NONCE " + nonce + "\n";
        sector.resize(512, '\0');
        // 1 MiB, sparse: a disk that looks like a disk to the guest.
        sys.create_disk_image(disk_path, sector, 1 << 20);
    }
}

// Whether to stop watching now (w says why).
bool time_to_stop(const QemuDirectConfig& cfg, const StageTracker& tracker, Watch& w, double now) {
    if (w.done_at >= 0 && now - w.done_at >= kExitGraceMs) return true;
    if (w.kvm_error && now - w.kvm_error_at >= kKvmErrorGraceMs) return true;
    if (now >= cfg.timeout_ms) return w.timed_out = true;
    if (cfg.first_marker_ms > 0 && !tracker.first_marker_seen() && now >= cfg.first_marker_ms) return w.no_marker_deadline = true;
    if (cfg.cancelled && cfg.cancelled()) return w.interrupted = true;
    return false;
}

// One chunk of QEMU's stdout (the serial console) or stderr.
void take_output(int which, std::string_view chunk, double at, StageTracker& tracker, Watch& w) {
    if (which == 0) {
        for (const auto& r : w.serial.feed(chunk)) {
            tracker.on_report(r, at);
            if (r.stage == "done" && w.done_at < 0) w.done_at = at;
        }
        return;
    }
    w.err_text.append(chunk);
    if (w.err_text.size() > 65536) w.err_text.erase(0, w.err_text.size() - 65536);
    if (!w.kvm_error &&
        (w.err_text.find("KVM internal error") != std::string::npos || w.err_text.find("KVM: entry failed") != std::string::npos)) {
        w.kvm_error = true;
        w.kvm_error_at = at;
    }
}

// Reads QEMU's console and stderr as they arrive until it exits, the guest
// is done, a deadline passes or the run is cancelled.
void watch(host::Child& child, const QemuDirectConfig& cfg, Clock::time_point t0, StageTracker& tracker, Watch& w) {
    pollfd fds[2] = {{child.out(), POLLIN, 0}, {child.err(), POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    for (;;) {
        if (child.try_reap() && open_fds == 0) break;
        if (time_to_stop(cfg, tracker, w, ms_since(t0))) break;
        if (open_fds == 0) {
            // Pipes closed, process not reaped yet: it is exiting.
            ::usleep(1000);
            continue;
        }
        const int n = ::poll(fds, 2, 5);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < 2 && n > 0; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                take_output(i, std::string_view(buf, static_cast<size_t>(got)), ms_since(t0), tracker, w);
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
}

// Why the guest did not pass, when QEMU ended (or was ended) before `done`.
void judge_failure(SmokeStep& s, const Watch& w, const StageTracker& tracker, const host::Child& child, bool exited_by_itself,
                   double now) {
    const std::string after = s.last_stage.empty() ? "before the guest's first marker" : "after stage " + s.last_stage;
    const std::string& err_text = w.err_text;
    if (w.interrupted) {
        fail(s, "interrupted", "interrupted " + after);
    } else if (w.kvm_error) {
        fail(s, "kvm_internal_error", "QEMU reported a KVM internal error " + after + ": " + first_line(err_text.substr(err_text.find("KVM"))));
    } else if (tracker.failed()) {
        const auto* f = tracker.first_failure();
        fail(s, tracker.failure_class(), fmt::format("stage {} failed: {}", f->name, f->detail));
    } else if (w.timed_out || w.no_marker_deadline) {
        if (w.serial.bytes_seen() == 0)
            fail(s, "no_serial_output", fmt::format("no serial output at all within {:.1f} s of QEMU's start", now / 1000));
        else if (!tracker.first_marker_seen())
            fail(s, "stalled_before_first_marker",
                 fmt::format("the console printed {} bytes but the guest's first marker never came within {:.1f} s", w.serial.bytes_seen(),
                             now / 1000));
        else
            fail(s, "timeout", fmt::format("timed out after {:.1f} s; last stage reached: {}", now / 1000, s.last_stage));
    } else if (!tracker.first_marker_seen()) {
        const std::string why = first_line(err_text);
        if (err_text.find("Could not access KVM kernel module") != std::string::npos ||
            err_text.find("failed to initialize kvm") != std::string::npos)
            fail(s, err_text.find("Permission denied") != std::string::npos ? "not_permitted" : "start_failed",
                 "QEMU could not use KVM: " + why);
        else if (exited_by_itself && WIFEXITED(child.status()) && WEXITSTATUS(child.status()) != 0)
            fail(s, "start_failed",
                 fmt::format("QEMU failed to start ({}): {}", describe_status(child.status()), why.empty() ? "no message" : why));
        else if (w.serial.bytes_seen() == 0)
            fail(s, "no_serial_output", fmt::format("QEMU ended ({}) without any serial output", s.details["qemu_exit"].get<std::string>()));
        else
            fail(s, "stalled_before_first_marker", "QEMU ended before the guest's first marker");
    } else if (tracker.done()) {
        fail(s, "guest_failure", "the guest said done without passing every stage");
    } else {
        fail(s, "guest_failure",
             fmt::format("QEMU ended ({}) {} without the guest saying done", s.details["qemu_exit"].get<std::string>(), after));
    }
}

// The step's outcome from what watching saw.
void judge(SmokeStep& s, const QemuDirectConfig& cfg, const Watch& w, const StageTracker& tracker, const host::Child& child,
           bool exited_by_itself, double now) {
    s.stages = tracker.stages();
    s.last_stage = tracker.last_stage();
    if (tracker.first_marker_seen()) {
        s.split.boot_ms = tracker.first_marker_ms();
        s.split.stages_ms = tracker.last_report_ms() - tracker.first_marker_ms();
    }
    if (!tracker.passed()) {
        judge_failure(s, w, tracker, child, exited_by_itself, now);
        return;
    }
    s.passed = true;
    s.message = fmt::format("QEMU ({} {}) booted the builtin guest, which read the nonce back and found the NIC", cfg.machine, cfg.accel);
    if (w.kvm_error)
        s.details["note"] = "QEMU reported a KVM internal error after the guest said done (while powering off)";
    else if (!exited_by_itself)
        // Some KVM flavours neither reset nor report the guest's triple
        // fault (kvm_pvm on newer kernels): the VM just stops running.
        s.details["note"] = fmt::format("the guest said done but QEMU had not exited {:.0f} ms later; kvmready ended it", kExitGraceMs);
}

}  // namespace

SmokeStep run_qemu_direct(const QemuDirectConfig& cfg) {
    const auto t_begin = Clock::now();
    SmokeStep s;
    s.id = "b";
    s.name = "qemu-direct";
    s.accel = cfg.accel;
    s.details["machine"] = cfg.machine;

    std::vector<std::string> searched;
    const std::string guest = cfg.guest.empty() ? builtin_guest_path(&searched) : cfg.guest;
    if (guest.empty() || ::access(guest.c_str(), R_OK) != 0) {
        fail(s, "prerequisite", guest.empty() ? fmt::format("the builtin guest kvmready-guest.elf is not installed (looked in {})",
                                                            fmt::join(searched, ", "))
                                              : fmt::format("cannot read the guest {}: {}", guest, std::strerror(errno)));
        s.elapsed_ms = ms_since(t_begin);
        return s;
    }
    s.details["guest"] = guest;

    host::Target& sys = cfg.target ? *cfg.target : host::live_target();
    RunDir dir{sys, ""};
    std::string nonce, mac, disk_path;
    try {
        prepare_run_dir(cfg, sys, dir, nonce, mac, disk_path);
    } catch (const std::exception& e) {
        fail(s, "prerequisite", e.what());
        s.elapsed_ms = ms_since(t_begin);
        return s;
    }
    s.details["nonce"] = nonce;
    s.details["mac"] = mac;

    const auto argv = qemu_direct_argv(cfg, guest, disk_path, mac);
    s.details["argv"] = argv;
    s.split.prepare_ms = ms_since(t_begin);

    const auto t0 = Clock::now();
    const host::Spawned sp = sys.spawn_piped(argv);
    if (sp.pid < 0) {
        const bool spawn_failed = sp.error.rfind("pipe:", 0) != 0;
        fail(s, spawn_failed && sp.error_number == EACCES ? "not_permitted" : "prerequisite",
             spawn_failed ? fmt::format("cannot run {}: {}", cfg.qemu, std::strerror(sp.error_number)) : sp.error);
        s.elapsed_ms = ms_since(t_begin);
        return s;
    }
    host::Child child(sp);
    s.ran = true;
    s.split.start_ms = ms_since(t0);

    Watch w;
    StageTracker tracker(builtin_guest_stages());
    if (cfg.disk) tracker.expect("disk", "nonce", nonce);
    if (cfg.nic) tracker.expect("nic", "mac", mac);
    watch(child, cfg, t0, tracker, w);
    const bool exited_by_itself = child.reaped();
    const auto t_teardown = Clock::now();
    child.kill_and_reap();
    s.details["qemu_exit"] = exited_by_itself ? describe_status(child.status()) : "killed by kvmready";
    if (!w.err_text.empty()) s.details["qemu_stderr"] = tail_of(w.err_text, 2048);

    judge(s, cfg, w, tracker, child, exited_by_itself, ms_since(t0));
    if (!s.passed) s.serial_tail = w.serial.tail();
    s.split.teardown_ms = ms_since(t_teardown);
    s.elapsed_ms = ms_since(t_begin);
    return s;
}

}  // namespace kvmready::smoke
