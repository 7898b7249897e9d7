#include "host/kvm_probe.hpp"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif

namespace kvmready::host {

namespace {

// Owns a file descriptor so that every early return closes what was opened.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { if (fd_ >= 0) ::close(fd_); }
    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool ok() const { return fd_ >= 0; }
private:
    int fd_;
};

// Real-mode guest: write "KVM" to the serial port, then HLT. No in-kernel
// irqchip is created, so HLT exits to us instead of blocking in the kernel.
constexpr unsigned char kGuestCode[] = {
    0xba, 0xf8, 0x03,  // mov dx, 0x3f8
    0xb0, 'K', 0xee,   // mov al, 'K'; out dx, al
    0xb0, 'V', 0xee,
    0xb0, 'M', 0xee,
    0xf4,              // hlt
};
constexpr uint64_t kGuestAddr = 0x1000;
constexpr int kTimerSignal = SIGUSR2;

void on_timer(int) {}  // only there to make KVM_RUN return EINTR

struct NamedCap {
    const char* name;
    int cap;
};
constexpr NamedCap kCaps[] = {
    {"max_vcpus", KVM_CAP_MAX_VCPUS},
    {"nr_vcpus", KVM_CAP_NR_VCPUS},
    {"nr_memslots", KVM_CAP_NR_MEMSLOTS},
    {"user_memory", KVM_CAP_USER_MEMORY},
    {"irqchip", KVM_CAP_IRQCHIP},
    {"irqfd", KVM_CAP_IRQFD},
    {"ioeventfd", KVM_CAP_IOEVENTFD},
    {"pit2", KVM_CAP_PIT2},
    {"ext_cpuid", KVM_CAP_EXT_CPUID},
    {"set_tss_addr", KVM_CAP_SET_TSS_ADDR},
    {"adjust_clock", KVM_CAP_ADJUST_CLOCK},
    {"xsave", KVM_CAP_XSAVE},
    {"tsc_control", KVM_CAP_TSC_CONTROL},
    {"immediate_exit", KVM_CAP_IMMEDIATE_EXIT},
    {"nested_state", KVM_CAP_NESTED_STATE},
    {"vm_types", KVM_CAP_VM_TYPES},
};

std::string exit_reason_name(uint32_t r) {
    switch (r) {
    case KVM_EXIT_UNKNOWN: return "unknown";
    case KVM_EXIT_EXCEPTION: return "exception";
    case KVM_EXIT_IO: return "io";
    case KVM_EXIT_HLT: return "hlt";
    case KVM_EXIT_MMIO: return "mmio";
    case KVM_EXIT_SHUTDOWN: return "shutdown (triple fault)";
    case KVM_EXIT_FAIL_ENTRY: return "fail_entry (hardware refused VM entry)";
    case KVM_EXIT_INTERNAL_ERROR: return "internal_error";
    default: return "exit reason " + std::to_string(r);
    }
}

// Arms a one-shot timer that signals this thread, so a guest that never
// reaches HLT cannot hang the tool.
class RunTimer {
public:
    explicit RunTimer(int ms) {
        struct sigaction sa {};
        sa.sa_handler = on_timer;  // no SA_RESTART: KVM_RUN must see EINTR
        sigemptyset(&sa.sa_mask);
        sigaction(kTimerSignal, &sa, &old_);
        sigevent sev {};
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = kTimerSignal;
        sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
        if (timer_create(CLOCK_MONOTONIC, &sev, &timer_) == 0) {
            armed_ = true;
            itimerspec its {};
            its.it_value.tv_sec = ms / 1000;
            its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L;
            timer_settime(timer_, 0, &its, nullptr);
        }
    }
    RunTimer(const RunTimer&) = delete;
    RunTimer& operator=(const RunTimer&) = delete;
    ~RunTimer() {
        if (armed_) timer_delete(timer_);
        sigaction(kTimerSignal, &old_, nullptr);
    }
private:
    timer_t timer_ {};
    bool armed_ = false;
    struct sigaction old_ {};
};

void run_guest(int kvm, int vm, KvmProbe& p, int timeout_ms) {
    void* mem = mmap(nullptr, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        p.run_error = std::string("mmap guest memory: ") + std::strerror(errno);
        return;
    }
    std::memcpy(mem, kGuestCode, sizeof kGuestCode);
    kvm_userspace_memory_region region {};
    region.slot = 0;
    region.guest_phys_addr = kGuestAddr;
    region.memory_size = 0x1000;
    region.userspace_addr = reinterpret_cast<uint64_t>(mem);
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        p.run_error = std::string("KVM_SET_USER_MEMORY_REGION: ") + std::strerror(errno);
        munmap(mem, 0x1000);
        return;
    }
    Fd vcpu(ioctl(vm, KVM_CREATE_VCPU, 0));
    if (!vcpu.ok()) {
        p.create_vcpu_errno = errno;
        munmap(mem, 0x1000);
        return;
    }
    p.vcpu_created = true;
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    void* run_map = run_size > 0 ? mmap(nullptr, static_cast<size_t>(run_size), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.get(), 0)
                                 : MAP_FAILED;
    if (run_map == MAP_FAILED) {
        p.run_error = std::string("mmap kvm_run: ") + std::strerror(errno);
        munmap(mem, 0x1000);
        return;
    }
    auto* run = static_cast<kvm_run*>(run_map);
    kvm_sregs sregs {};
    kvm_regs regs {};
    if (ioctl(vcpu.get(), KVM_GET_SREGS, &sregs) < 0) {
        p.run_error = std::string("KVM_GET_SREGS: ") + std::strerror(errno);
    } else {
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        regs.rip = kGuestAddr;
        regs.rflags = 0x2;
        if (ioctl(vcpu.get(), KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu.get(), KVM_SET_REGS, &regs) < 0) {
            p.run_error = std::string("setting vCPU registers: ") + std::strerror(errno);
        } else {
            RunTimer timer(timeout_ms);
            for (int i = 0; i < 16; ++i) {
                if (ioctl(vcpu.get(), KVM_RUN, 0) < 0) {
                    p.run_error = errno == EINTR ? "guest did not reach HLT within " + std::to_string(timeout_ms) + " ms"
                                                 : std::string("KVM_RUN: ") + std::strerror(errno);
                    break;
                }
                if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT) {
                    const char* data = reinterpret_cast<const char*>(run) + run->io.data_offset;
                    p.guest_output.append(data, run->io.size * run->io.count);
                    continue;
                }
                if (run->exit_reason == KVM_EXIT_HLT) {
                    p.ran = true;
                } else {
                    p.run_error = "unexpected exit: " + exit_reason_name(run->exit_reason);
                    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
                        p.run_error += " (suberror " + std::to_string(run->internal.suberror) + ")";
                }
                break;
            }
            if (!p.ran && p.run_error.empty()) p.run_error = "guest kept exiting without reaching HLT";
        }
    }
    munmap(run_map, static_cast<size_t>(run_size));
    munmap(mem, 0x1000);
}

}  // namespace

KvmProbe run_kvm_probe(const std::string& dev, int timeout_ms) {
    KvmProbe p;
    p.attempted = true;
    auto start = std::chrono::steady_clock::now();
    Fd kvm(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (!kvm.ok()) {
        p.open_errno = errno;
    } else {
        p.api_version = ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
        for (const auto& c : kCaps) p.capabilities[c.name] = ioctl(kvm.get(), KVM_CHECK_EXTENSION, c.cap);
        if (p.api_version == KVM_API_VERSION) {
            Fd vm(ioctl(kvm.get(), KVM_CREATE_VM, 0));
            if (!vm.ok()) {
                p.create_vm_errno = errno;
            } else {
                p.vm_created = true;
                run_guest(kvm.get(), vm.get(), p, timeout_ms);
            }
        }
    }
    p.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return p;
}

}  // namespace kvmready::host
