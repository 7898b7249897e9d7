#include "smoke/smoke.hpp"

#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "checks/common.hpp"
#include "core/errors.hpp"
#include "core/probe.hpp"
#include "host/host.hpp"
#include "host/target.hpp"
#include "smoke/common.hpp"
#include "smoke/guest_paths.hpp"
#include "smoke/initramfs.hpp"
#include "smoke/libvirt_run.hpp"
#include "smoke/qemu_direct.hpp"

namespace kvmready::smoke {

namespace {

namespace fs = std::filesystem;

std::atomic<int> g_signal{0};

void on_signal(int sig) {
    int expected = 0;
    if (!g_signal.compare_exchange_strong(expected, sig)) {
        // Second signal: the user insists. The domain still dies with our
        // connection (AUTODESTROY); the volume may stay.
        ::signal(sig, SIG_DFL);
        ::raise(sig);
    }
}

SmokeStep stage_a(Facts& facts) {
    SmokeStep s;
    s.id = "a";
    s.name = "kvm-ioctl";
    s.accel = "kvm";
    const auto& k = facts.kvm;
    s.ran = k.attempted;
    s.elapsed_ms = k.duration_ms;
    if (const auto* m = checks::flavour_module(facts)) s.details["flavour"] = m->name;
    if (!k.attempted) {
        s.failure = "prerequisite";
        s.message = k.not_attempted_reason.empty() ? "the KVM ioctl test was not run" : k.not_attempted_reason;
        return s;
    }
    if (k.open_errno) {
        s.failure = k.open_errno == EACCES || k.open_errno == EPERM ? "not_permitted" : "prerequisite";
        s.message = fmt::format("cannot open /dev/kvm: {}", std::strerror(k.open_errno));
        return s;
    }
    if (!k.ran) {
        s.failure = "kvm_internal_error";
        s.message = fmt::format("KVM did not run the in-process guest: {}", k.run_error.empty() ? "unknown error" : k.run_error);
        return s;
    }
    s.passed = true;
    s.message = fmt::format("/dev/kvm created a VM and a vCPU and ran guest code to HLT (API {})", k.api_version);
    SmokeStage st;
    st.name = "boot";
    st.status = "pass";
    st.at_ms = st.ms = k.duration_ms;
    st.detail = "guest code ran to HLT";
    s.stages.push_back(st);
    return s;
}

// The Linux guest's initramfs, generated into a private directory: the
// project's static init plus the kernel's virtio modules. Returns an error
// sentence, or "" with `initrd` set.
std::string make_initramfs(const std::string& kernel, const SmokeOptions& o, std::string& dir, std::string& initrd) {
    std::vector<std::string> searched;
    const std::string init = init_path(&searched);
    if (init.empty()) return "the Linux guest's init (kvmready-init) is not installed beside kvmready (set KVMREADY_GUEST_DIR)";
    // vmlinuz-RELEASE in ROOT/boot: its modules are in ROOT/lib/modules/RELEASE.
    const fs::path kp = fs::weakly_canonical(fs::path(kernel));
    std::string release = kp.filename().string();
    if (release.rfind("vmlinuz-", 0) == 0) release = release.substr(8);
    else {
        utsname u{};
        ::uname(&u);
        release = u.release;
    }
    fs::path mods = modules_dir_for(release, kp.parent_path().parent_path());
    if (mods.empty()) mods = modules_dir_for(release);
    std::string parent = o.run_dir_parent;
    if (parent.empty()) {
        const char* t = std::getenv("TMPDIR");
        parent = t && *t ? t : "/var/tmp";
    }
    int mkdir_err = 0;
    auto made = (o.target ? *o.target : host::live_target()).make_temp_dir(parent, "kvmready-initramfs-", &mkdir_err);
    if (!made) return fmt::format("cannot create a directory in {}: {}", parent, std::strerror(mkdir_err));
    dir = *made;
    InitramfsOptions io;
    io.init = init;
    io.modules_dir = mods;
    io.target = o.target;
    std::string err;
    if (!write_initramfs(dir + "/initramfs.cpio", io, &err)) return "cannot build the Linux guest's initramfs: " + err;
    initrd = dir + "/initramfs.cpio";
    return "";
}

// A KVM boot failure worth a TCG rerun: the layer below KVM may still work.
bool accel_suspect(const SmokeStep& s) {
    return !s.passed && (s.failure == "start_failed" || s.failure == "kvm_internal_error" || s.failure == "no_serial_output" ||
                         s.failure == "stalled_before_first_marker" || s.failure == "timeout");
}

std::string how_kvm_failed(const SmokeStep& s) {
    if (s.failure == "start_failed") return "libvirt could not start the guest as type kvm (" + s.message + ")";
    if (s.failure == "kvm_internal_error") return "QEMU hit a KVM internal error";
    if (s.failure == "no_serial_output") return "the guest printed nothing at all on its serial console (" + s.message + ")";
    if (s.last_stage.empty()) return "it stalled before the guest's first marker (" + s.message + ")";
    return "it stalled after stage " + s.last_stage;
}

}  // namespace

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

int interrupted_by() { return g_signal.load(); }

namespace {

void validate(const SmokeOptions& o) {
    if (o.accel != "kvm" && o.accel != "tcg" && o.accel != "auto") throw UsageError("--accel must be kvm, tcg or auto");
    if (o.guest != "builtin" && o.guest != "linux") throw UsageError("--guest must be builtin or linux");
    if (o.timeout_s <= 0) throw UsageError("--timeout must be a positive number of seconds");
    if (!o.initrd.empty() && o.kernel.empty() && o.guest != "linux") throw UsageError("--initrd needs --kernel or --guest linux");
    for (const auto* p : {&o.kernel, &o.initrd})
        if (!p->empty() && ::access(p->c_str(), R_OK) != 0)
            throw NoInputError(fmt::format("{}: {}", *p, std::strerror(errno)));
}

// (a) the in-process ioctl guest, and the KVM flavour for the diagnosis.
SmokeStep run_stage_a(const SmokeOptions& o, Facts& facts) {
    if (o.accel != "tcg") {
        auto h = host::make_live_host();
        ProbeOptions po;
        po.areas = 0;
        facts = probe(*h, po);
        return stage_a(facts);
    }
    SmokeStep a;
    a.id = "a";
    a.name = "kvm-ioctl";
    a.accel = "kvm";
    a.message = "not run: --accel tcg";
    return a;
}

// The guest to boot, into cfg: "" or why it cannot be booted.
// generated_dir: the initramfs made for it (the caller removes it).
std::string choose_guest(const SmokeOptions& o, LibvirtRunConfig& cfg, std::string& generated_dir) {
    std::string guest_error;
    if (o.guest == "builtin") {
        if (cfg.kernel.empty()) cfg.kernel = builtin_guest_path();
        if (cfg.kernel.empty())
            guest_error = "the builtin guest (kvmready-guest.elf) is not installed beside kvmready (set KVMREADY_GUEST_DIR, or use --kernel)";
        if (!cfg.initrd.empty()) {
            // A kernel with its own initramfs is a Linux guest in all but name.
            cfg.memory_mib = 256;
            cfg.cmdline = "console=ttyS0,115200 panic=-1 " + o.append;
        }
        return guest_error;
    }
    cfg.linux_guest = true;
    cfg.memory_mib = 256;
    cfg.step_id = "d";
    cfg.step_name = "linux";
    // The guest's own watchdog ends a stuck stage a little before the
    // host gives up, so the report names the stage and the guest's reason.
    cfg.cmdline = fmt::format("console=ttyS0,115200 panic=-1 kvmready.timeout={} {}", std::max(3, o.timeout_s - 2), o.append);
    if (cfg.kernel.empty()) {
        utsname u{};
        ::uname(&u);
        cfg.kernel = std::string("/boot/vmlinuz-") + u.release;
        if (::access(cfg.kernel.c_str(), R_OK) != 0) guest_error = fmt::format("{} is not readable (use --kernel PATH)", cfg.kernel);
    }
    if (cfg.initrd.empty() && guest_error.empty()) guest_error = make_initramfs(cfg.kernel, o, generated_dir, cfg.initrd);
    return guest_error;
}

// Steps (b) to (d) and the differential diagnosis, into r.
class Ladder {
public:
    Ladder(const SmokeOptions& o, SmokeReport& r, LibvirtRunConfig& cfg, std::string flavour)
        : o_(o), r_(r), cfg_(cfg), flavour_(std::move(flavour)), with_b_(o.guest == "builtin" && o.kernel.empty()) {}

    void under_kvm() {
        cfg_.accel = "kvm";
        // Under auto a KVM boot that shows nothing for a while is the symptom
        // being diagnosed; the TCG rerun gets the full timeout.
        if (o_.accel == "auto") cfg_.first_marker_ms = std::clamp(cfg_.timeout_ms / 3, 3000, 10000);
        if (with_b_) {
            run_b("kvm", cfg_.first_marker_ms);
            if (o_.accel == "auto" && accel_suspect(r_.steps.back()) && !interrupted_by()) run_b("tcg", 0);
        }
        if (!interrupted_by()) r_.steps.push_back(run_libvirt(cfg_, &r_.kept, &r_.cleanup_commands));
        r_.accel_used = "kvm";
        const SmokeStep kvm_step = r_.steps.back();
        if (o_.accel == "auto" && accel_suspect(kvm_step) && !interrupted_by()) rerun_under_tcg(kvm_step);
    }

    void under_tcg() {
        cfg_.accel = "tcg";
        if (o_.accel == "auto") {
            const SmokeStep& a = r_.steps.front();
            r_.diagnosis = fmt::format("KVM is not usable here (stage a: {}), so the guest ran under TCG only.", a.message);
        }
        if (with_b_) run_b("tcg", 0);
        if (!interrupted_by()) r_.steps.push_back(run_libvirt(cfg_, &r_.kept, &r_.cleanup_commands));
        r_.accel_used = "tcg";
    }

private:
    // (b) the builtin guest under QEMU directly, no libvirt: when it fails
    // and (c) works, libvirt is not the problem, and the other way round.
    void run_b(const std::string& accel, int first_marker_ms) {
        QemuDirectConfig q;
        q.guest = cfg_.kernel;
        q.accel = accel;
        q.timeout_ms = std::min(cfg_.timeout_ms, 10000);
        q.first_marker_ms = first_marker_ms;
        q.tmp_parent = o_.run_dir_parent;
        q.cancelled = cfg_.cancelled;
        q.target = o_.target;
        r_.steps.push_back(run_qemu_direct(q));
    }

    void rerun_under_tcg(const SmokeStep& kvm_step) {
        cfg_.accel = "tcg";
        cfg_.first_marker_ms = 0;
        r_.steps.push_back(run_libvirt(cfg_, &r_.kept, &r_.cleanup_commands));
        r_.accel_used = "tcg";
        const SmokeStep& tcg = r_.steps.back();
        if (tcg.passed) {
            r_.diagnosis = fmt::format("QEMU, libvirt, storage and network work (the same guest passed every stage under TCG); "
                                       "KVM acceleration is what fails: {}.",
                                       how_kvm_failed(kvm_step));
            if (flavour_ == "kvm_pvm")
                r_.diagnosis += " KVM here is kvm_pvm (PVM: software, pagetable-based virtualization without VT-x/AMD-V): /dev/kvm "
                                "runs the in-process ioctl guest (stage a) but QEMU's ordinary full-system guests do not boot on it; "
                                "run guests as domain type qemu (TCG), or use a host kernel with kvm_intel or kvm_amd.";
            else if (!flavour_.empty())
                r_.diagnosis += fmt::format(" KVM here is {}; read the QEMU log of a kvm guest and dmesg for its errors.", flavour_);
            r_.verdict = "KVM guests do not boot on this host; the same guest boots under TCG (software emulation).";
        } else if (!interrupted_by()) {
            r_.diagnosis = fmt::format("Neither KVM nor TCG boots the guest, so the fault is below KVM (QEMU, libvirt, storage or "
                                       "network): under TCG, {}",
                                       tcg.message);
        }
    }

    const SmokeOptions& o_;
    SmokeReport& r_;
    LibvirtRunConfig& cfg_;
    std::string flavour_;
    bool with_b_;
};

// The verdict once every step ran (not interrupted).
void decide(const SmokeOptions& o, const std::string& flavour, SmokeReport& r) {
    const SmokeStep& last = r.steps.back();
    // Every step run under the accelerator that decided must pass.
    bool all = true;
    for (const auto& st : r.steps)
        if (st.ran && st.id != "a" && st.accel == r.accel_used && !st.passed) all = false;
    r.passed = last.passed && all && (r.accel_used == "kvm" || o.accel == "tcg");
    if (!r.verdict.empty()) return;
    if (r.passed)
        r.verdict = r.accel_used == "kvm" ? "A KVM guest booted through libvirt and proved its disk and NIC: this host runs VMs."
                                          : "A TCG guest booted through libvirt and proved its disk and NIC (KVM was not asked for).";
    // The builtin guest needs no paging and no privileged kernel work, so
    // it runs under kvm_pvm where ordinary kernels hang: a plain "runs VMs"
    // here would be trusted too far.
    if (r.passed && r.accel_used == "kvm" && flavour == "kvm_pvm" && o.guest == "builtin")
        r.diagnosis = "KVM here is kvm_pvm (PVM: software, pagetable-based virtualization without VT-x/AMD-V): the builtin guest "
                      "runs under it, but ordinary kernels fail or hang with -accel kvm unless they are PVM guests; run them as "
                      "type qemu (TCG). `kvmready smoke --guest linux` shows it with a real kernel.";
    else if (last.passed && r.accel_used == "tcg" && o.accel != "tcg")
        r.verdict = "The guest boots only under TCG: KVM is not usable on this host.";
    else if (last.passed) {
        for (const auto& st : r.steps)
            if (st.ran && st.id != "a" && st.accel == r.accel_used && !st.passed && r.verdict.empty())
                r.verdict = fmt::format("The smoke test failed at step ({}) {}: {}", st.id, st.name, st.message);
    }
    else
        r.verdict = fmt::format("The smoke test failed at step ({}) {}: {}", last.id, last.name, last.message);
}

}  // namespace

SmokeReport run_smoke(const SmokeOptions& o) {
    const auto t0 = Clock::now();
    validate(o);
    SmokeReport r;
    r.accel_requested = o.accel;
    Facts facts;
    r.steps.push_back(run_stage_a(o, facts));
    const bool kvm_offered = o.accel != "tcg" && r.steps.back().passed;

    LibvirtRunConfig cfg;
    cfg.uri = o.connect_uri;
    cfg.network = o.network;
    cfg.bridge = o.bridge;
    cfg.pool = o.pool;
    cfg.timeout_ms = o.timeout_s * 1000;
    cfg.keep = o.keep;
    cfg.run_dir_parent = o.run_dir_parent;
    cfg.cancelled = [] { return g_signal.load() != 0; };
    cfg.kernel = o.kernel;
    cfg.initrd = o.initrd;
    cfg.cmdline = o.append;
    cfg.target = o.target;
    host::Target& sys = o.target ? *o.target : host::live_target();
    std::string generated_dir;  // the generated initramfs, removed at the end
    struct DirGuard {
        host::Target& sys;
        std::string* d;
        ~DirGuard() {
            if (!d->empty()) sys.remove_tree(*d);
        }
    } guard{sys, &generated_dir};
    if (const std::string guest_error = choose_guest(o, cfg, generated_dir); !guest_error.empty()) {
        SmokeStep c;
        c.id = cfg.step_id;
        c.name = cfg.step_name;
        c.failure = "prerequisite";
        c.message = guest_error;
        r.steps.push_back(c);
        r.verdict = "The smoke test could not run: " + guest_error + ".";
        r.exit_code = smoke_exit_code(r);
        r.total_ms = ms_since(t0);
        return r;
    }

    const bool try_kvm = o.accel == "kvm" || (o.accel == "auto" && kvm_offered);
    const std::string flavour = checks::flavour_module(facts) ? checks::flavour_module(facts)->name : "";
    Ladder ladder(o, r, cfg, flavour);
    if (try_kvm) ladder.under_kvm();
    else ladder.under_tcg();

    if (interrupted_by()) {
        r.passed = false;
        r.verdict = fmt::format("Interrupted by signal {}; everything the run created was removed{}.", interrupted_by(),
                                o.keep ? " (except what --keep keeps)" : "");
        r.exit_code = 128 + interrupted_by();
        r.total_ms = ms_since(t0);
        return r;
    }
    decide(o, flavour, r);
    r.exit_code = smoke_exit_code(r);
    r.total_ms = ms_since(t0);
    r.verdict_ms = r.total_ms;
    for (const auto& st : r.steps) r.verdict_ms -= st.split.teardown_ms;
    return r;
}

SmokeFacts smoke_for_check(const Request& request) {
    install_signal_handlers();
    SmokeOptions o;
    static_cast<Request&>(o) = request;
    // A check must not hold the whole report up for long: a stalled KVM boot
    // gives up after 5 s (then TCG gets 15 s).
    o.timeout_s = 15;
    try {
        return summarize(run_smoke(o), o.connect_uri);
    } catch (const std::exception& e) {
        SmokeFacts f;
        f.not_run_reason = e.what();
        return f;
    }
}

}  // namespace kvmready::smoke
