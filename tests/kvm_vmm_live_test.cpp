// Live tests of the VMM-level KVM probe on this machine's real /dev/kvm.
// Every expectation is computed here with the test's own ioctls (literal
// ioctl numbers, byte buffers in the kernel's C layout) and compared with
// what host/kvm_probe.cpp recorded and what checks/kvm_vmm.cpp concluded, so
// a wrong ioctl number, a shifted buffer or a misdecoded bit shows up. They
// assert invariants that hold on any host, plus what this PVM host must show.
#include <cpuid.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "checks/common.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"

using namespace kvmready;

namespace {

// From <linux/kvm.h> compiled as C (x86-64); the C++ view of those headers
// (6.1) gets the flexible-array structs' sizes wrong.
constexpr unsigned long kCheckExtension = 0xae03;
constexpr unsigned long kCreateVm = 0xae01;
constexpr unsigned long kCreateVcpu = 0xae41;
constexpr unsigned long kGetSupportedCpuid = 0xc008ae05;
constexpr unsigned long kSetCpuid2 = 0x4008ae90;
constexpr unsigned long kGetMsrs = 0xc008ae88;
constexpr unsigned long kSetMsrs = 0x4008ae89;
constexpr unsigned long kGetMsrIndexList = 0xc004ae02;
constexpr unsigned long kGetMsrFeatureIndexList = 0xc004ae0a;

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

struct Entry {  // struct kvm_cpuid_entry2, 40 bytes
    uint32_t function, index, flags, eax, ebx, ecx, edx, pad[3];
};
static_assert(sizeof(Entry) == 40);

std::vector<Entry> supported_cpuid(int kvm) {
    std::vector<uint64_t> buf((8 + 256 * sizeof(Entry)) / 8 + 1, 0);
    auto* bytes = reinterpret_cast<unsigned char*>(buf.data());
    *reinterpret_cast<uint32_t*>(bytes) = 256;
    if (ioctl(kvm, kGetSupportedCpuid, bytes) < 0) return {};
    const uint32_t n = *reinterpret_cast<uint32_t*>(bytes);
    const auto* e = reinterpret_cast<const Entry*>(bytes + 8);
    return {e, e + n};
}

const Entry* find(const std::vector<Entry>& v, uint32_t fn, uint32_t idx) {
    for (const auto& e : v)
        if (e.function == fn && e.index == idx) return &e;
    return nullptr;
}

std::vector<uint32_t> msr_list(int kvm, unsigned long req) {
    uint32_t head[2] = {0, 0};
    if (ioctl(kvm, req, head) == 0) return {};
    if (errno != E2BIG) return {};
    std::vector<uint32_t> buf(1 + head[0], 0);
    buf[0] = head[0];
    if (ioctl(kvm, req, buf.data()) < 0) return {};
    return {buf.begin() + 1, buf.begin() + 1 + buf[0]};
}

// KVM_GET_MSRS/KVM_SET_MSRS of one MSR: returns how many were processed.
int one_msr(int fd, unsigned long req, uint32_t index, uint64_t& value) {
    uint64_t buf[3] = {1, index, value};  // nmsrs+pad, index+reserved, data
    int r = ioctl(fd, req, buf);
    if (r == 1) value = buf[2];
    return r;
}

const Finding& finding(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return f;
    throw std::runtime_error("no finding " + id);
}

struct HostBit {
    uint32_t leaf, sub;
    int reg;  // 0 eax 1 ebx 2 ecx 3 edx
};

uint32_t host_reg(uint32_t leaf, uint32_t sub, int reg) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned r[] = {a, b, c, d};
    return r[reg];
}

uint32_t entry_reg(const Entry& e, int reg) {
    const uint32_t r[] = {e.eax, e.ebx, e.ecx, e.edx};
    return r[reg];
}

uint32_t entry_reg(const host::KvmCpuidEntry& e, int reg) {
    const uint32_t r[] = {e.eax, e.ebx, e.ecx, e.edx};
    return r[reg];
}

std::vector<std::string> cpuinfo_flags() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("flags", 0) != 0) continue;
        std::istringstream ws(line.substr(line.find(':') + 1));
        std::vector<std::string> v;
        for (std::string w; ws >> w;) v.push_back(w);
        return v;
    }
    return {};
}

#define SKIP_WITHOUT_KVM(fd)                       \
    Fd fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC)); \
    if (!fd.ok()) GTEST_SKIP() << "/dev/kvm cannot be opened read-write here: " << std::strerror(errno)

}  // namespace

// Each capability the probe recorded equals a KVM_CHECK_EXTENSION done here,
// on /dev/kvm and on a VM of our own.
TEST(KvmVmmLive, CapabilitiesMatchDirectCheckExtension) {
    SKIP_WITHOUT_KVM(kvm);
    const auto p = host::run_kvm_probe("/dev/kvm");
    ASSERT_TRUE(p.vmm_probed);
    Fd vm(ioctl(kvm.get(), kCreateVm, 0));
    ASSERT_TRUE(vm.ok()) << std::strerror(errno);
    const bool vm_checks = ioctl(kvm.get(), kCheckExtension, KVM_CAP_CHECK_EXTENSION_VM) > 0;
    for (const auto& c : host::kvm_vmm_cap_names()) {
        ASSERT_TRUE(p.system_caps.count(c.name)) << c.name;
        EXPECT_EQ(p.system_caps.at(c.name), ioctl(kvm.get(), kCheckExtension, c.cap)) << c.name;
        if (vm_checks) {
            ASSERT_TRUE(p.vm_caps.count(c.name)) << c.name;
            EXPECT_EQ(p.vm_caps.at(c.name), ioctl(vm.get(), kCheckExtension, c.cap)) << c.name;
        }
    }
    // kvm.api's older map must keep its values (same ioctl, same names).
    for (const auto& [name, v] : p.capabilities)
        if (p.system_caps.count(name)) {
            EXPECT_EQ(v, p.system_caps.at(name)) << name;
        }
}

// The recorded supported CPUID is exactly what KVM_GET_SUPPORTED_CPUID returns.
TEST(KvmVmmLive, SupportedCpuidIsRecordedVerbatim) {
    SKIP_WITHOUT_KVM(kvm);
    const auto p = host::run_kvm_probe("/dev/kvm");
    const auto mine = supported_cpuid(kvm.get());
    ASSERT_FALSE(mine.empty());
    ASSERT_EQ(p.supported_cpuid_errno, 0);
    ASSERT_EQ(p.supported_cpuid.size(), mine.size());
    // KVM fills in the APIC ID of whichever CPU ran the ioctl; the probe
    // and this test may run on different CPUs.
    auto per_cpu = [](uint32_t fn, int reg) -> uint32_t {
        if (fn == 1 && reg == 1) return 0xff000000u;                       // initial APIC ID
        if ((fn == 0xb || fn == 0x1f) && reg == 3) return 0xffffffffu;     // x2APIC ID
        if (fn == 0x8000001e && reg == 0) return 0xffffffffu;              // extended APIC ID (AMD)
        return 0;
    };
    for (size_t i = 0; i < mine.size(); ++i) {
        const auto& a = p.supported_cpuid[i];
        const auto& b = mine[i];
        EXPECT_EQ(std::tie(a.function, a.index, a.flags), std::tie(b.function, b.index, b.flags)) << "entry " << i;
        for (int reg = 0; reg < 4; ++reg)
            EXPECT_EQ(entry_reg(a, reg) & ~per_cpu(a.function, reg), entry_reg(b, reg) & ~per_cpu(b.function, reg))
                << std::hex << "CPUID." << a.function << "." << a.index << " reg " << reg;
    }
}

// KVM never offers a guest a feature the host CPU lacks, except the few it
// emulates or derives itself (arch/x86/kvm/cpuid.c kvm_set_cpu_caps).
TEST(KvmVmmLive, SupportedCpuidNeverClaimsAbsentHostFeature) {
    SKIP_WITHOUT_KVM(kvm);
    const auto p = host::run_kvm_probe("/dev/kvm");
    ASSERT_FALSE(p.supported_cpuid.empty());
    struct Allowed {
        HostBit where;
        uint32_t mask;
    };
    const Allowed synthesised[] = {
        {{1, 0, 2}, (1u << 21) | (1u << 24) | (1u << 31)},  // x2apic, tsc-deadline, hypervisor
        {{7, 0, 1}, 1u << 1},                                // tsc_adjust
        {{7, 0, 2}, 1u << 2},                                // umip (emulated on VMX)
        {{7, 0, 3}, (1u << 26) | (1u << 27) | (1u << 29) | (1u << 31)},  // spec_ctrl, stibp, arch_capabilities, ssbd
    };
    unsigned max_basic = 0, max_ext = 0, x = 0;
    __cpuid(0, max_basic, x, x, x);
    __cpuid(0x80000000, max_ext, x, x, x);
    const HostBit checked[] = {{1, 0, 2}, {1, 0, 3}, {7, 0, 1}, {7, 0, 2}, {7, 0, 3}, {7, 1, 0}, {0xd, 1, 0}, {0x80000001, 0, 2},
                               {0x80000001, 0, 3}};
    for (const auto& w : checked) {
        uint32_t guest = 0;
        for (const auto& e : p.supported_cpuid)
            if (e.function == w.leaf && e.index == w.sub) guest = entry_reg(e, w.reg);
        const bool leaf_exists = w.leaf >= 0x80000000u ? w.leaf <= max_ext : w.leaf <= max_basic;
        const uint32_t host = leaf_exists ? host_reg(w.leaf, w.sub, w.reg) : 0;
        uint32_t allowed = 0;
        for (const auto& a : synthesised)
            if (a.where.leaf == w.leaf && a.where.sub == w.sub && a.where.reg == w.reg) allowed = a.mask;
        EXPECT_EQ(guest & ~host & ~allowed, 0u) << std::hex << "CPUID." << w.leaf << "." << w.sub << " reg " << w.reg
                                                << ": KVM offers bits the host lacks";
    }
}

// kvm.guest-cpuid names a feature missing exactly when the host has it and
// KVM_GET_SUPPORTED_CPUID (done here) lacks it. On a PVM host that is the
// SSE3 .. AVX2 range, which must make the check warn.
TEST(KvmVmmLive, GuestCpuidCheckAgreesWithDirectComparison) {
    SKIP_WITHOUT_KVM(kvm);
    const auto mine = supported_cpuid(kvm.get());
    ASSERT_FALSE(mine.empty());
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const Report r = run_checks(f, {"kvm"});
    const Finding& g = finding(r, "kvm.guest-cpuid");
    ASSERT_TRUE(g.status == Status::Pass || g.status == Status::Warn) << g.message;
    struct Probe {
        const char* name;
        uint32_t leaf, sub;
        int reg;
        unsigned bit;
        const char* key;
        const char* cpuinfo;
    };
    const auto flags = cpuinfo_flags();
    const Probe probes[] = {
        {"sse3", 1, 0, 2, 0, "CPUID.1:ECX", "pni"},
        {"ssse3", 1, 0, 2, 9, "CPUID.1:ECX", "ssse3"},
        {"sse4_1", 1, 0, 2, 19, "CPUID.1:ECX", "sse4_1"},
        {"sse4_2", 1, 0, 2, 20, "CPUID.1:ECX", "sse4_2"},
        {"popcnt", 1, 0, 2, 23, "CPUID.1:ECX", "popcnt"},
        {"avx", 1, 0, 2, 28, "CPUID.1:ECX", "avx"},
        {"avx2", 7, 0, 1, 5, "CPUID.7.0:EBX", "avx2"},
        {"bmi2", 7, 0, 1, 8, "CPUID.7.0:EBX", "bmi2"},
        {"avx512f", 7, 0, 1, 16, "CPUID.7.0:EBX", "avx512f"},
        {"abm", 0x80000001, 0, 2, 5, "CPUID.80000001:ECX", "abm"},
        {"rdtscp", 0x80000001, 0, 3, 27, "CPUID.80000001:EDX", "rdtscp"},
    };
    const auto& missing = g.evidence.at("missing");
    bool any_level_feature_missing = false;
    for (const auto& pr : probes) {
        const Entry* e = find(mine, pr.leaf, pr.sub);
        const bool guest = e && (entry_reg(*e, pr.reg) >> pr.bit & 1);
        // The check reads the host's CPUID where the probe read that leaf,
        // /proc/cpuinfo otherwise (documented in its `reads`); so does this.
        const bool host = f.cpu.dump.find(pr.leaf, pr.sub) ? (host_reg(pr.leaf, pr.sub, pr.reg) >> pr.bit & 1)
                                                           : std::find(flags.begin(), flags.end(), pr.cpuinfo) != flags.end();
        bool listed = false;
        if (missing.contains(pr.key))
            for (const auto& n : missing.at(pr.key)) listed |= n.get<std::string>() == pr.name;
        EXPECT_EQ(listed, host && !guest) << pr.name << " host=" << host << " guest=" << guest;
        if (host && !guest && std::string(pr.name) != "rdtscp") any_level_feature_missing = true;
    }
    if (any_level_feature_missing) {
        EXPECT_EQ(g.status, Status::Warn) << g.message;
        EXPECT_NE(g.evidence.at("guest_level"), g.evidence.at("host_level"));
    }
    if (checks::is_pvm(derive(f))) {
        // This development machine: PVM withholds SSE3 through AVX2.
        EXPECT_EQ(g.status, Status::Warn);
        EXPECT_NE(g.message.find("sse3"), std::string::npos) << g.message;
        EXPECT_NE(g.message.find("avx2"), std::string::npos) << g.message;
        EXPECT_EQ(g.evidence.at("guest_level"), "x86-64-v1");
    }
}

// The probe's feature-MSR round trip agrees with one done here on a vCPU of
// our own, in the same order a VMM uses (KVM_SET_CPUID2, then KVM_SET_MSRS).
TEST(KvmVmmLive, FeatureMsrRoundTripAgreesWithIndependentSetMsrs) {
    SKIP_WITHOUT_KVM(kvm);
    if (ioctl(kvm.get(), kCheckExtension, KVM_CAP_GET_MSR_FEATURES) <= 0)
        GTEST_SKIP() << "this KVM has no feature MSRs (KVM_CAP_GET_MSR_FEATURES)";
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const host::KvmProbe& p = f.kvm;
    const auto features = msr_list(kvm.get(), kGetMsrFeatureIndexList);
    ASSERT_FALSE(features.empty());
    ASSERT_EQ(p.feature_msrs.size(), features.size());
    EXPECT_EQ(p.msr_index_list, msr_list(kvm.get(), kGetMsrIndexList));

    Fd vm(ioctl(kvm.get(), kCreateVm, 0));
    ASSERT_TRUE(vm.ok()) << std::strerror(errno);
    Fd vcpu(ioctl(vm.get(), kCreateVcpu, 0));
    ASSERT_TRUE(vcpu.ok()) << std::strerror(errno);
    auto cpuid = supported_cpuid(kvm.get());
    std::vector<uint64_t> buf((8 + cpuid.size() * sizeof(Entry)) / 8 + 1, 0);
    auto* bytes = reinterpret_cast<unsigned char*>(buf.data());
    *reinterpret_cast<uint32_t*>(bytes) = static_cast<uint32_t>(cpuid.size());
    std::memcpy(bytes + 8, cpuid.data(), cpuid.size() * sizeof(Entry));
    ASSERT_EQ(ioctl(vcpu.get(), kSetCpuid2, bytes), 0) << std::strerror(errno);

    const Report r = run_checks(f, {"kvm.feature-msrs"});
    const Finding& fm = finding(r, "kvm.feature-msrs");
    bool any_refused = false;
    for (size_t i = 0; i < features.size(); ++i) {
        const auto& rec = p.feature_msrs[i];
        ASSERT_EQ(rec.index, features[i]);
        uint64_t v = 0;
        const bool readable = one_msr(kvm.get(), kGetMsrs, features[i], v) == 1;
        EXPECT_EQ(rec.readable, readable) << std::hex << features[i];
        if (!readable) continue;
        EXPECT_EQ(rec.value, v) << std::hex << features[i];
        uint64_t w = v;
        const int set = one_msr(vcpu.get(), kSetMsrs, features[i], w);
        EXPECT_EQ(rec.set_result, set) << std::hex << "MSR " << features[i] << " value " << v;
        any_refused |= set != 1;
    }
    EXPECT_EQ(fm.status, any_refused ? Status::Warn : Status::Pass) << fm.message;
}

// vm-types and nested-state report the raw capability values they decode.
TEST(KvmVmmLive, VmTypesAndNestedStateMatchCheckExtension) {
    SKIP_WITHOUT_KVM(kvm);
    auto h = host::make_live_host();
    const Facts f = probe(*h, ProbeOptions{});
    const Report r = run_checks(f, {"kvm"});
    const int types = ioctl(kvm.get(), kCheckExtension, 235 /* KVM_CAP_VM_TYPES */);
    const int nested = ioctl(kvm.get(), kCheckExtension, KVM_CAP_NESTED_STATE);
    const Finding& vt = finding(r, "kvm.vm-types");
    EXPECT_EQ(vt.evidence.at("kvm_cap_vm_types").get<int>(), types);
    if (types > 0) {
        // Bit 0 (KVM_X86_DEFAULT_VM) is always set when the capability exists.
        ASSERT_TRUE(types & 1);
        EXPECT_EQ(vt.evidence.at("vm_types").at(0), "default");
        EXPECT_EQ(vt.evidence.at("vm_types").size(), static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(types))));
    }
    const Finding& ns = finding(r, "kvm.nested-state");
    EXPECT_EQ(ns.evidence.at("kvm_cap_nested_state").get<int>(), nested);
    EXPECT_EQ(ns.status, nested > 0 ? Status::Pass : Status::Warn) << ns.message;
}

// The extra pass stays cheap: it is measured by the probe itself.
TEST(KvmVmmLive, VmmPassIsBoundedInTime) {
    SKIP_WITHOUT_KVM(kvm);
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) t.push_back(host::run_kvm_probe("/dev/kvm").vmm_probe_ms);
    std::sort(t.begin(), t.end());
    // ~0.7 ms on this nested PVM host; 100 ms leaves room for a loaded CI box.
    EXPECT_LT(t[2], 100.0);
    EXPECT_GT(t[2], 0.0);
}
