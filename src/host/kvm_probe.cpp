#include "host/kvm_probe.hpp"
#include "host/unique_fd.hpp"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

// Newer than the build's <linux/kvm.h>; ABI numbers never change.
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_X86_XCOMP_GUEST_SUPP
#define KVM_X86_XCOMP_GUEST_SUPP 0
#endif

namespace kvmready::host {

namespace {

using Fd = UniqueFd;

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

// Everything a VMM's startup check or vCPU setup asks KVM_CHECK_EXTENSION
// for: the union of Firecracker's, cloud-hypervisor's and QEMU's required
// lists (checks/kvm_vmm.cpp cites them) plus the capabilities that describe
// VM types, nested state and XSAVE.
const std::vector<KvmCapName> kVmmCaps = {
    {"irqchip", KVM_CAP_IRQCHIP},
    {"hlt", KVM_CAP_HLT},
    {"user_memory", KVM_CAP_USER_MEMORY},
    {"set_tss_addr", KVM_CAP_SET_TSS_ADDR},
    {"ext_cpuid", KVM_CAP_EXT_CPUID},
    {"nr_vcpus", KVM_CAP_NR_VCPUS},
    {"nr_memslots", KVM_CAP_NR_MEMSLOTS},
    {"mp_state", KVM_CAP_MP_STATE},
    {"destroy_memory_region_works", KVM_CAP_DESTROY_MEMORY_REGION_WORKS},
    {"user_nmi", KVM_CAP_USER_NMI},
    {"irq_routing", KVM_CAP_IRQ_ROUTING},
    {"join_memory_regions_works", KVM_CAP_JOIN_MEMORY_REGIONS_WORKS},
    {"mce", KVM_CAP_MCE},
    {"irqfd", KVM_CAP_IRQFD},
    {"pit2", KVM_CAP_PIT2},
    {"pit_state2", KVM_CAP_PIT_STATE2},
    {"ioeventfd", KVM_CAP_IOEVENTFD},
    {"set_identity_map_addr", KVM_CAP_SET_IDENTITY_MAP_ADDR},
    {"adjust_clock", KVM_CAP_ADJUST_CLOCK},
    {"internal_error_data", KVM_CAP_INTERNAL_ERROR_DATA},
    {"vcpu_events", KVM_CAP_VCPU_EVENTS},
    {"debugregs", KVM_CAP_DEBUGREGS},
    {"x86_robust_singlestep", KVM_CAP_X86_ROBUST_SINGLESTEP},
    {"xsave", KVM_CAP_XSAVE},
    {"xcrs", KVM_CAP_XCRS},
    {"tsc_control", KVM_CAP_TSC_CONTROL},
    {"get_tsc_khz", KVM_CAP_GET_TSC_KHZ},
    {"max_vcpus", KVM_CAP_MAX_VCPUS},
    {"tsc_deadline_timer", KVM_CAP_TSC_DEADLINE_TIMER},
    {"signal_msi", KVM_CAP_SIGNAL_MSI},
    {"readonly_mem", KVM_CAP_READONLY_MEM},
    {"check_extension_vm", KVM_CAP_CHECK_EXTENSION_VM},
    {"x86_smm", KVM_CAP_X86_SMM},
    {"split_irqchip", KVM_CAP_SPLIT_IRQCHIP},
    {"ioeventfd_any_length", KVM_CAP_IOEVENTFD_ANY_LENGTH},
    {"x2apic_api", KVM_CAP_X2APIC_API},
    {"immediate_exit", KVM_CAP_IMMEDIATE_EXIT},
    {"get_msr_features", KVM_CAP_GET_MSR_FEATURES},
    {"nested_state", KVM_CAP_NESTED_STATE},
    {"xsave2", KVM_CAP_XSAVE2},
    {"sys_attributes", KVM_CAP_SYS_ATTRIBUTES},
    {"guest_memfd", KVM_CAP_GUEST_MEMFD},
    {"vm_types", KVM_CAP_VM_TYPES},
};

constexpr uint32_t kMsrArchCapabilities = 0x10a;
constexpr uint32_t kMsrCoreCapabilities = 0xcf;

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// kvm_msr_list, kvm_msrs and kvm_cpuid2 end in flexible arrays that older
// <linux/kvm.h> (6.1) declares with __DECLARE_FLEX_ARRAY, whose empty struct
// has size 1 in C++: sizeof and the entries' offset differ from the kernel's
// C layout, and so would the ioctl numbers built from them. These buffers and
// numbers follow the C layout: an 8-byte header (4 for kvm_msr_list), then
// the entries.
static_assert(sizeof(kvm_msr_entry) == 16 && sizeof(kvm_cpuid_entry2) == 40, "kernel ABI");
constexpr unsigned long kIocGetMsrIndexList = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, 4);
constexpr unsigned long kIocGetMsrFeatureIndexList = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x0a, 4);
constexpr unsigned long kIocGetSupportedCpuid = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, 8);
constexpr unsigned long kIocSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, 8);
constexpr unsigned long kIocGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8);
constexpr unsigned long kIocSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, 8);

// Header word(s) followed by n entries, 8-byte aligned.
class WireBuf {
public:
    WireBuf(size_t header, size_t entry, size_t n) : header_(header), words_((header + entry * n + 7) / 8 + 1), mem_(words_, 0) {}
    void* data() { return mem_.data(); }
    uint32_t& count() { return *reinterpret_cast<uint32_t*>(mem_.data()); }
    template <typename T>
    T* entries() { return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(mem_.data()) + header_); }
private:
    size_t header_, words_;
    std::vector<uint64_t> mem_;
};

// KVM_GET_MSR_INDEX_LIST and KVM_GET_MSR_FEATURE_INDEX_LIST: ask for the
// count (E2BIG fills it in), then for the list.
int get_msr_list(int kvm, unsigned long req, std::vector<uint32_t>& out) {
    WireBuf probe(4, 4, 0);
    if (ioctl(kvm, req, probe.data()) == 0) return 0;  // an empty list
    if (errno != E2BIG) return errno;
    const uint32_t n = probe.count();
    WireBuf buf(4, 4, n);
    buf.count() = n;
    if (ioctl(kvm, req, buf.data()) < 0) return errno;
    const uint32_t* idx = buf.entries<uint32_t>();
    out.assign(idx, idx + std::min(n, buf.count()));
    return 0;
}

// KVM_GET_MSRS / KVM_SET_MSRS on one MSR. Returns the ioctl result: the
// number of MSRs processed (1 or 0), or -errno.
int one_msr(int fd, unsigned long req, uint32_t index, uint64_t& value) {
    WireBuf buf(8, sizeof(kvm_msr_entry), 1);
    buf.count() = 1;
    auto* e = buf.entries<kvm_msr_entry>();
    e->index = index;
    e->data = value;
    int r = ioctl(fd, req, buf.data());
    if (r < 0) return -errno;
    if (r == 1) value = e->data;
    return r;
}

// Everything on the /dev/kvm fd itself.
void probe_system(int kvm, KvmProbe& p) {
    for (const auto& c : kVmmCaps) p.system_caps[c.name] = ioctl(kvm, KVM_CHECK_EXTENSION, c.cap);

    for (uint32_t n : {256u, 1024u}) {  // KVM_MAX_CPUID_ENTRIES is 256 today
        WireBuf buf(8, sizeof(kvm_cpuid_entry2), n);
        buf.count() = n;
        if (ioctl(kvm, kIocGetSupportedCpuid, buf.data()) < 0) {
            p.supported_cpuid_errno = errno;
            if (errno == E2BIG) continue;
            break;
        }
        p.supported_cpuid_errno = 0;
        const uint32_t got = std::min(n, buf.count());
        for (uint32_t i = 0; i < got; ++i) {
            const auto& e = buf.entries<kvm_cpuid_entry2>()[i];
            p.supported_cpuid.push_back({e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx});
        }
        break;
    }

    if (p.system_caps["sys_attributes"] > 0) {
        uint64_t v = 0;
        kvm_device_attr attr {};
        attr.group = 0;
        attr.attr = KVM_X86_XCOMP_GUEST_SUPP;
        attr.addr = reinterpret_cast<uint64_t>(&v);
        if (ioctl(kvm, KVM_GET_DEVICE_ATTR, &attr) < 0) p.xcomp_guest_supp_errno = errno;
        else p.xcomp_guest_supp = v;
    } else {
        p.xcomp_guest_supp_errno = ENOTTY;  // kernel older than KVM_CAP_SYS_ATTRIBUTES (5.17)
    }

    p.msr_index_list_errno = get_msr_list(kvm, kIocGetMsrIndexList, p.msr_index_list);
    if (p.system_caps["get_msr_features"] <= 0) {
        p.feature_msr_list_errno = ENOTTY;  // kernel older than 4.17
        return;
    }
    std::vector<uint32_t> features;
    p.feature_msr_list_errno = get_msr_list(kvm, kIocGetMsrFeatureIndexList, features);
    for (uint32_t idx : features) {
        KvmFeatureMsr m;
        m.index = idx;
        uint64_t v = 0;
        m.readable = one_msr(kvm, kIocGetMsrs, idx, v) == 1;
        if (m.readable) m.value = v;
        p.feature_msrs.push_back(m);
    }
}

void probe_vm_caps(int vm, KvmProbe& p) {
    if (p.system_caps["check_extension_vm"] <= 0) return;
    for (const auto& c : kVmmCaps) p.vm_caps[c.name] = ioctl(vm, KVM_CHECK_EXTENSION, c.cap);
}

// What a VMM does at vCPU creation: give the vCPU the CPUID it will show the
// guest (here all KVM supports, like `-cpu host`), then write each feature
// MSR with the host's value. KVM checks MSR writes against the vCPU's CPUID,
// so without KVM_SET_CPUID2 first the test would fail on healthy hosts.
void probe_msr_round_trip(int vm, KvmProbe& p) {
    if (p.feature_msrs.empty()) return;
    Fd vcpu(ioctl(vm, KVM_CREATE_VCPU, 1));
    if (!vcpu.ok()) {
        p.msr_vcpu_errno = errno;
        return;
    }
    if (!p.supported_cpuid.empty()) {
        WireBuf buf(8, sizeof(kvm_cpuid_entry2), p.supported_cpuid.size());
        buf.count() = static_cast<uint32_t>(p.supported_cpuid.size());
        for (size_t i = 0; i < p.supported_cpuid.size(); ++i) {
            const auto& e = p.supported_cpuid[i];
            auto& d = buf.entries<kvm_cpuid_entry2>()[i];
            d.function = e.function;
            d.index = e.index;
            d.flags = e.flags;
            d.eax = e.eax;
            d.ebx = e.ebx;
            d.ecx = e.ecx;
            d.edx = e.edx;
        }
        if (ioctl(vcpu.get(), kIocSetCpuid2, buf.data()) < 0) p.set_cpuid_errno = errno;
    } else {
        p.set_cpuid_errno = p.supported_cpuid_errno ? p.supported_cpuid_errno : ENODATA;
    }
    for (auto& m : p.feature_msrs) {
        if (!m.readable) continue;
        m.set_tried = true;
        uint64_t v = m.value;
        m.set_result = one_msr(vcpu.get(), kIocSetMsrs, m.index, v);
        uint64_t back = 0;
        m.readback_ok = one_msr(vcpu.get(), kIocGetMsrs, m.index, back) == 1;
        if (m.readback_ok) m.readback = back;
        // Which bits does the vCPU refuse? Only meaningful for plain
        // capability bitmaps; VMX control MSRs have must-be-one bits.
        if (m.set_result == 0 && (m.index == kMsrArchCapabilities || m.index == kMsrCoreCapabilities)) {
            for (int b = 0; b < 64; ++b) {
                const uint64_t bit = uint64_t{1} << b;
                if (!(m.value & bit)) continue;
                uint64_t one = bit;
                if (one_msr(vcpu.get(), kIocSetMsrs, m.index, one) == 0) m.refused_bits |= bit;
            }
        }
    }
}

}  // namespace

const std::vector<KvmCapName>& kvm_vmm_cap_names() { return kVmmCaps; }

KvmProbe run_kvm_probe(const std::string& dev, int timeout_ms) {
    KvmProbe p;
    p.attempted = true;
    auto start = Clock::now();
    Fd kvm(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (!kvm.ok()) {
        p.open_errno = errno;
        p.duration_ms = ms_since(start);
        return p;
    }
    p.api_version = ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    for (const auto& c : kCaps) p.capabilities[c.name] = ioctl(kvm.get(), KVM_CHECK_EXTENSION, c.cap);
    if (p.api_version != KVM_API_VERSION) {
        p.duration_ms = ms_since(start);
        return p;
    }
    // The VMM pass costs ~0.65 ms on a nested host, almost all of it in
    // KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2, which execute CPUID per leaf
    // (each traps to the outer hypervisor); a helper thread bought nothing
    // measurable, so it stays serial.
    p.vmm_probed = true;
    auto t = Clock::now();
    probe_system(kvm.get(), p);
    double vmm_ms = ms_since(t);
    Fd vm(ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vm.ok()) p.create_vm_errno = errno;
    else p.vm_created = true;
    if (vm.ok()) run_guest(kvm.get(), vm.get(), p, timeout_ms);
    // kvm.api reports this: open, create, run to HLT, without the VMM pass.
    p.duration_ms = ms_since(start) - vmm_ms;
    t = Clock::now();
    if (vm.ok()) {
        probe_vm_caps(vm.get(), p);
        probe_msr_round_trip(vm.get(), p);
    }
    p.vmm_probe_ms = vmm_ms + ms_since(t);
    return p;
}

}  // namespace kvmready::host
