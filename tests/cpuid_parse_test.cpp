// Unit tests of the CPUID dump parsers, decoder and serialisers on in-memory
// text, plus the live `cpuid -r` output of the machine running the tests.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "cpuid/cpuid.hpp"

using namespace std::string_literals;
using kvmready::cpuid::decode;
using kvmready::cpuid::Decoded;
using kvmready::cpuid::Dump;
using kvmready::cpuid::Leaf;
using kvmready::cpuid::parse;
using kvmready::cpuid::ParseError;
using kvmready::cpuid::to_cpuid_r;
using kvmready::cpuid::to_json;

namespace {

// Leaf 0 of an Intel CPU with max basic leaf 0Dh, and leaf 1 with VMX set.
constexpr const char* kAidaIntel =
    "------[ CPUID Registers / Logical CPU #0 ]------\n"
    "\n"
    "allcpu: Package 0 / Core 0 / Thread 0: Valid\n"
    "\n"
    "CPUID 00000000: 0000000D-756E6547-6C65746E-49656E69 [GenuineIntel]\n"
    "CPUID 00000001: 000306C3-00100800-7FFAFBFF-BFEBFBFF\n"
    "CPUID 00000004: 1C004121-01C0003F-0000003F-00000000 [SL 00]\n"
    "CPUID 00000004: 1C004122-01C0003F-0000003F-00000000 [SL 01]\n"
    "CPUID 0000000D: 00000007-00000340-00000340-00000000 [SL 00] [x87]\n"
    "CPUID 0000000D: 00000001-00000000-00000000-00000000 [SL 01]\n"
    "CPUID 0000000D: 00000100-00000240-00000000-00000000 [SL 02]\n"
    "CPUID 80000000: 80000008-00000000-00000000-00000000\n"
    "CPUID 80000001: 00000000-00000000-00000021-2C100800\n"
    "CPUID 80000002: 65746E49-2952286C-726F4320-4D542865 [Intel(R) Core(TM]\n"
    "CPUID 80000003: 37692029-3737342D-20514830-20555043 [) i7-4770HQ CPU ]\n"
    "CPUID 80000004: 2E322040-48473032-0000007A-00000000 [@ 2.20GHz]\n"
    "\n"
    "------[ CPUID Registers / Logical CPU #1 Virtual ]------\n"
    "\n"
    "CPUID 00000000: 0000000D-756E6547-6C65746E-49656E69 [GenuineIntel]\n"
    "CPUID 00000001: 000306C3-01100800-7FFAFBFF-BFEBFBFF\n"
    "\n"
    "------[ MSR Registers / Logical CPU #0 ]------\n"
    "\n"
    "MSR 0000003A: 0000-0000-0000-0005\n"
    "MSR 00000480: 00DA-0400-0000-0004 [VMX basic]\n"
    "MSR 00000481: < FAILED >\n"
    "\n"
    "------[ MSR Registers / Logical CPU #1 ]------\n"
    "\n"
    "MSR 0000003A: 0000-0000-0000-0000\n";

Dump parse_ok(const std::string& text, const std::string& name = "test") {
    try {
        return parse(text, name);
    } catch (const ParseError& e) {
        ADD_FAILURE() << "unexpected ParseError: " << e.what();
        return {};
    }
}

// Runs parse() expecting a ParseError; returns it for inspection.
ParseError parse_error(const std::string& text, const std::string& name = "test") {
    try {
        const Dump d = parse(text, name);
        ADD_FAILURE() << "parse() accepted the input as " << d.format << " with " << d.leaves.size() << " leaves";
    } catch (const ParseError& e) {
        return e;
    }
    return ParseError(name, -1, "no error");
}

std::array<uint32_t, 4> regs(const Dump& d, uint32_t leaf, uint32_t sub = 0) {
    const auto l = d.find(leaf, sub);
    if (!l) {
        ADD_FAILURE() << "leaf " << std::hex << leaf << "." << sub << " missing";
        return {};
    }
    return {l->eax, l->ebx, l->ecx, l->edx};
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
    return s;
}

// ------------------------------------------------------------------ AIDA64 / InstLatX64

TEST(CpuidParseAida, FullReportFirstLogicalCpuAndMsrs) {
    const Dump d = parse_ok(kAidaIntel);
    EXPECT_EQ(d.format, "aida64");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(d.leaves.size(), 12u);  // only CPU #0's leaves
    EXPECT_EQ(regs(d, 1)[1], 0x00100800u) << "leaf 1 must come from the first CPU";
    EXPECT_EQ(regs(d, 4, 1)[0], 0x1C004122u);
    EXPECT_EQ(regs(d, 0xD, 2)[1], 0x240u);
    EXPECT_FALSE(d.find(4, 2).has_value());
    ASSERT_EQ(d.msrs.size(), 2u);  // FAILED ones are absent; CPU #1's duplicates ignored
    EXPECT_EQ(d.msrs.at(0x3A), 5u);
    EXPECT_EQ(d.msrs.at(0x480), 0x00DA040000000004ull);

    const Decoded dec = decode(d);
    EXPECT_EQ(dec.vendor, "GenuineIntel");
    EXPECT_EQ(dec.brand, "Intel(R) Core(TM) i7-4770HQ CPU @ 2.20GHz");
    EXPECT_TRUE(dec.vmx);
    EXPECT_FALSE(dec.svm);
    EXPECT_FALSE(dec.hypervisor);
    EXPECT_TRUE(dec.long_mode);
    EXPECT_EQ(dec.family, 6u);
    EXPECT_EQ(dec.model, 0x3Cu);
    EXPECT_EQ(dec.stepping, 3u);
}

TEST(CpuidParseAida, SeparatorDialects) {
    // Every separator variant of FORMATS.md, including space-separated registers.
    const std::array<std::string, 7> lines = {
        "CPUID 00000001: 00000633-00000000-00000021-0080FBFF",
        "CPUID 00000001  \t00000633-00000000-00000021-0080FBFF",
        "CPUID 00000001 00000633-00000000-00000021-0080FBFF",
        "CPUID 00000001 : 00000633 00000000 00000021 0080FBFF",
        "CPUID 00000001 :00000633-00000000-00000021-0080FBFF",
        "CPUID 00000001: 00000633 00000000 00000021 0080FBFF",
        "CPUID 00000001  00000633-00000000-00000021-0080fbff  [SSE3] [x87]   ",
    };
    for (const auto& l : lines) {
        SCOPED_TRACE(l);
        const Dump d = parse_ok("CPUID 00000000: 00000001-756E6547-6C65746E-49656E69\n" + l + "\n");
        EXPECT_EQ(regs(d, 1), (std::array<uint32_t, 4>{0x633, 0, 0x21, 0x80FBFF}));
        EXPECT_TRUE(decode(d).vmx);
    }
}

TEST(CpuidParseAida, CrlfAndLowerCaseHex) {
    const Dump d = parse_ok(
        "CPU 0:\r\n"
        "CPUID 00000000: 00000016-756e6547-6c65746e-49656e69\r\n"
        "CPUID 00000001: 00050654-00400800-7ffefbf7-bfebfbff\r\n"
        "CPU 1:\r\n"
        "CPUID 00000000: 00000016-756e6547-6c65746e-49656e69\r\n");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(decode(d).vendor, "GenuineIntel");
    EXPECT_EQ(regs(d, 1)[3], 0xbfebfbffu);
}

TEST(CpuidParseAida, RepeatedLeafIsNextSubleafAndDuplicateSlKeepsFirst) {
    const Dump d = parse_ok(
        "CPUID 00000000: 0000000D-68747541-444D4163-69746E65\n"
        "CPUID 00000004: 00000121-01C0003F-0000003F-00000000\n"
        "CPUID 00000004: 00000122-01C0003F-0000003F-00000000\n"
        "CPUID 00000004: 00000143-01C0003F-000003FF-00000000\n"
        "CPUID 0000000D: 00000007-00000340-000003C0-40000000 [SL 00]\n"
        "CPUID 0000000D: 00000080-00000340-00000000-00000000 [SL 3E]\n"
        "CPUID 0000000D: 00000099-00000999-00000000-00000000 [SL 3E]\n"
        "CPUID 00000007: 00000000-00000008-00000000-00000000\n");
    EXPECT_EQ(regs(d, 4, 0)[0], 0x121u);
    EXPECT_EQ(regs(d, 4, 1)[0], 0x122u);
    EXPECT_EQ(regs(d, 4, 2)[0], 0x143u);
    EXPECT_EQ(regs(d, 0xD, 0x3E)[0], 0x80u) << "the first [SL 3E] wins";
    EXPECT_FALSE(d.find(0xD, 1).has_value()) << "[SL nn] is the subleaf, not the occurrence count";
    EXPECT_EQ(regs(d, 7, 0)[1], 8u);
    EXPECT_EQ(d.leaves.size(), 7u);
}

TEST(CpuidParseAida, EveryBlockHeaderKindCountsLogicalCpus) {
    const std::string regs0 = "CPUID 00000000: 00000001-68747541-444D4163-69746E65\n";
    const std::string regs1 = "CPUID 00000001: 00000F4A-00000800-00000000-078BFBFF\n";
    const std::array<std::string, 7> headers = {
        "------[ Logical CPU #{} ]------",
        "------[ CPUID Registers / Logical CPU #{} ]------",
        "CPU#00{} AffMask: 0x0000000000000001",
        "CPUID Registers (CPU #{}):",
        "Group: 0x00 Affinity mask: 0x000000000000000{}",
        "_________________ Logical CPU #{} _________________",
        "CPU {}:",
    };
    for (const auto& h : headers) {
        SCOPED_TRACE(h);
        std::string text = "CPUID Manufacturer: AuthenticAMD\nCPUID CPU Name: AMD Athlon 64\n";
        for (int cpu = 0; cpu < 3; ++cpu) {
            text += replace_all(h, "{}", std::to_string(cpu)) + "\n";
            if (cpu == 1) continue;  // an empty block (filtered copy) is not counted
            text += regs0 + regs1;
        }
        const Dump d = parse_ok(text);
        EXPECT_EQ(d.logical_cpus, 2);
        EXPECT_EQ(d.leaves.size(), 2u);
    }
}

TEST(CpuidParseAida, HeaderlessDumpSplitsAtRepeatedLeafZero) {
    const Dump d = parse_ok(
        "CPUID 00000000: 00000001-746E6543-736C7561-48727561\n"
        "CPUID 00000001: 00000691-00000000-00000000-0381B93F\n"
        "CPUID 00000000: 00000001-746E6543-736C7561-48727561\n"
        "CPUID 00000001: 00000691-11111111-00000000-0381B93F\n");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(regs(d, 1)[1], 0u);
    EXPECT_EQ(decode(d).vendor, "CentaurHauls");
}

TEST(CpuidParseAida, TruncatedRegisterLineNamesItsLine) {
    const std::string text =
        "CPUID Manufacturer: GenuineIntel\n"
        "\n"
        "CPUID 00000000: 0000000D-756E6547-6C65746E-49656E69\n"
        "CPUID 00000001: 000306C3-00100800-7FFA";
    const ParseError e = parse_error(text, "dump.txt");
    EXPECT_EQ(e.line, 4);
    EXPECT_EQ(e.file, "dump.txt");
    EXPECT_NE(std::string(e.what()).find("dump.txt:4:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("register line"), std::string::npos) << e.what();
}

TEST(CpuidParseAida, MalformedHexIsAnErrorNotSkipped) {
    const std::string head = "CPUID 00000000: 0000000D-756E6547-6C65746E-49656E69\n";
    const std::array<std::string, 7> bad = {
        "CPUID 00000001: 000306C3-00100800-7FFAFBFF-BFEBFBFG",   // non-hex digit
        "CPUID 00000001: 000306C3-00100800-7FFAFBFF-BFEBFBFFF",  // 9 digits
        "CPUID 00000001: 000306C3-0010800-7FFAFBFF-BFEBFBFF",    // 7 digits
        "CPUID 0000001: 000306C3-00100800-7FFAFBFF-BFEBFBFF",    // short leaf
        "CPUID 00000001: 000306C3-00100800-7FFAFBFF",            // 3 registers
        "CPUID 00000001: 000306C3--00100800-7FFAFBFF-BFEBFBFF",  // doubled delimiter
        "CPUID 00000004: 1C004121-01C0003F-0000003F-00000000 [SL 0G]",
    };
    for (const auto& l : bad) {
        SCOPED_TRACE(l);
        EXPECT_EQ(parse_error(head + l + "\n" + head).line, 2);
    }
    EXPECT_EQ(parse_error(head + "MSR 00000480: 00DA-0400-0000\n").line, 2);
}

TEST(CpuidParseAida, HeaderWordsAreNotRegisterLines) {
    const Dump d = parse_ok(
        "CPUID Manufacturer : GenuineIntel\n"
        "CPUID CPU Name     : Intel(R) Pentium(R) III\n"
        "CPUID Revision     : 00000683h\n"
        "CPUID Registers (CPU #1):\n"
        "CPUID 00000000: 00000003-756E6547-6C65746E-49656E69\n"
        "CPUID 7 Features   : none\n"
        "CPUID Face\n"
        "MSR 3Ah (IA32_FEATURE_CONTROL) : locked\n"
        "MSR Registers follow\n");
    EXPECT_EQ(d.leaves.size(), 1u);
    EXPECT_TRUE(d.msrs.empty());
    EXPECT_EQ(d.logical_cpus, 1);
}

TEST(CpuidParseAida, Utf16ReportIsRead) {
    const std::string ascii = "CPUID 00000000: 00000001-68747541-444D4163-69746E65\r\n";
    std::string utf16 = "\xFF\xFE"s;
    for (char c : ascii) {
        utf16.push_back(c);
        utf16.push_back('\0');
    }
    EXPECT_EQ(decode(parse_ok(utf16)).vendor, "AuthenticAMD");
}

// ------------------------------------------------------------------ libcpuid .test / raw

TEST(CpuidParseLibcpuid, TestContainerStopsAtSeparator) {
    const std::string sep(80, '-');
    const std::string text =
        "_________________ Logical CPU #0 _________________\n"
        "CPUID 00000000: 00000001-68747541-444D4163-69746E65\n"
        "CPUID 00000001: 00000F4A-00000800-00000000-078BFBFF\n" +
        sep + "\nx86\nx86-64-v1\ngeneral\n15\n4\n10\n15\n4\n1\n1\n64\n64\n1024\n-1\n-1\n"
              "CPUID 00000000: this line is expected data, never parsed\n";
    const Dump d = parse_ok(text);
    EXPECT_EQ(d.format, "aida64");
    EXPECT_EQ(d.leaves.size(), 2u);
    EXPECT_EQ(d.logical_cpus, 1);
}

TEST(CpuidParseLibcpuid, ExpectedValuesOnlyIsRejected) {
    const std::string text = std::string(80, '-') + "\nx86\nx86-64-v2\ngeneral\n6\n58\n9\n6\n58\n2\n4\n";
    const ParseError e = parse_error(text, "only-expected.test");
    EXPECT_EQ(e.line, 0);
    EXPECT_NE(std::string(e.what()).find("libcpuid .test"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a CPUID dump"), std::string::npos) << e.what();
}

TEST(CpuidParseLibcpuid, RawFormatArrays) {
    std::string text = "version=0.6.5\n_________________ Logical CPU #0 _________________\n";
    for (int i = 0; i < 32; ++i) {
        char buf[80];
        // Leaves above the maximum (0Dh) still hold data, as libcpuid writes them.
        const uint32_t eax = i == 0 ? 0xd : (i == 1 ? 0x000306c3 : 0x11111111);
        const uint32_t ecx = i == 1 ? 0x7ffafbff : 0;
        std::snprintf(buf, sizeof buf, "basic_cpuid[%d]=%08x %08x %08x %08x\n", i, eax,
                      i == 0 ? 0x756e6547u : 0u, i == 0 ? 0x6c65746eu : ecx, i == 0 ? 0x49656e69u : 0u);
        text += buf;
    }
    text += "ext_cpuid[0]=80000008 00000000 00000000 00000000\n"
            "ext_cpuid[1]=00000000 00000000 00000021 2c100800\n"
            "intel_fn4[0]=1c004121 01c0003f 0000003f 00000000\n"
            "intel_fn4[1]=1c004122 01c0003f 0000003f 00000000\n"
            "intel_fn11[1]=00000004 00000008 00000201 00000000\n"
            "intel_fn12h[2]=00000012 00000000 00000000 00000000\n"
            "amd_fn8000001dh[3]=00000163 03c0003f 00003fff 00000002\n"
            "_________________ Logical CPU #1 _________________\n"
            "basic_cpuid[0]=0000000d 756e6547 6c65746e 49656e69\n"
            "basic_cpuid[1]=000306c3 01100800 7ffafbff bfebfbff\n";
    const Dump d = parse_ok(text);
    EXPECT_EQ(d.format, "libcpuid-raw");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(regs(d, 4, 0)[0], 0x11111111u) << "basic_cpuid[4] came first and is leaf 4 subleaf 0";
    EXPECT_EQ(regs(d, 4, 1)[0], 0x1c004122u);
    EXPECT_EQ(regs(d, 0xB, 1)[2], 0x201u);
    EXPECT_EQ(regs(d, 0x12, 2)[0], 0x12u);
    EXPECT_EQ(regs(d, 0x8000001D, 3)[0], 0x163u);
    EXPECT_EQ(regs(d, 0x80000001)[2], 0x21u);
    EXPECT_EQ(regs(d, 1)[1], 0u) << "leaf 1 must come from logical CPU #0";
    const Decoded dec = decode(d);
    EXPECT_EQ(dec.max_basic, 0xDu);
    EXPECT_TRUE(dec.vmx);
    EXPECT_EQ(dec.max_extended, 0x80000008u);
}

TEST(CpuidParseLibcpuid, MalformedRawLineNamesItsLine) {
    const std::string text =
        "basic_cpuid[0]=0000000d 756e6547 6c65746e 49656e69\n"
        "basic_cpuid[1]=000306c3 01100800 7ffafbff\n";
    const ParseError e = parse_error(text);
    EXPECT_EQ(e.line, 2);
    EXPECT_NE(std::string(e.what()).find("basic_cpuid"), std::string::npos) << e.what();
    EXPECT_EQ(parse_error("basic_cpuid[0]=0000000d 756e6547 6c65746e 49656e6\n").line, 1);
    EXPECT_EQ(parse_error("basic_cpuid[0]=0000000d 756e6547 6c65746e 49656e69\next_cpuid[x]=0 0 0 0\n").line, 2);
}

// ------------------------------------------------------------------ cpuid -r

TEST(CpuidParseCpuidR, TwoCpusAndSubleaves) {
    const Dump d = parse_ok(
        "CPU 0:\n"
        "   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n"
        "   0x00000001 0x00: eax=0x00a20f12 ebx=0x000c0800 ecx=0x7ef8320b edx=0x178bfbff\n"
        "   0x0000000d 0x3e: eax=0x00000080 ebx=0x00000340 ecx=0x00000000 edx=0x00000000\n"
        "   0x80000000 0x00: eax=0x80000028 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n"
        "   0x80000001 0x00: eax=0x00a20f12 ebx=0x20000000 ecx=0x75c237ff edx=0x2fd3fbff\n"
        "   0x8000000a 0x00: eax=0x00000001 ebx=0x00008000 ecx=0x00000000 edx=0x0001bfbf\n"
        "   0x8000001f 0x00: eax=0x0001780f ebx=0x00000173 ecx=0x000001fd edx=0x00000001\n"
        "CPU 1:\n"
        "   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n");
    EXPECT_EQ(d.format, "cpuid-r");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(d.leaves.size(), 7u);
    EXPECT_EQ(regs(d, 0xD, 0x3E)[0], 0x80u);

    const Decoded dec = decode(d);
    EXPECT_EQ(dec.vendor, "AuthenticAMD");
    EXPECT_EQ(dec.family, 0x19u);
    EXPECT_EQ(dec.model, 0x21u);
    EXPECT_EQ(dec.stepping, 2u);
    EXPECT_TRUE(dec.svm);
    EXPECT_FALSE(dec.vmx);
    EXPECT_EQ(dec.svm_revision, 1u);
    EXPECT_EQ(dec.svm_asids, 0x8000u);
    // 0x1bfbf: bits 0-5, 7, 8(unnamed), 9(unnamed), 10, 11(unnamed), 12, 13, 15, 16
    EXPECT_EQ(dec.svm_features,
              (std::vector<std::string>{"npt", "lbrv", "svm_lock", "nrip_save", "tsc_scale", "vmcb_clean",
                                        "decodeassists", "pausefilter", "pfthreshold", "avic", "v_vmsave_vmload",
                                        "vgif"}));
    EXPECT_EQ(dec.mem_encryption, (std::vector<std::string>{"sme", "sev", "sev_es"}));
}

TEST(CpuidParseCpuidR, SingleCpuHeaderAndOldSubleaflessLines) {
    const Dump d = parse_ok(
        "CPU:\n"
        "   0x00000000: eax=0x00000002 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
        "   0x00000001: eax=0x00000634 ebx=0x00000000 ecx=0x00000000 edx=0x0080f9ff\n");
    EXPECT_EQ(d.logical_cpus, 1);
    EXPECT_EQ(decode(d).signature, 0x634u);
}

TEST(CpuidParseCpuidR, TruncatedLineNamesItsLine) {
    const std::string good = "   0x00000000 0x00: eax=0x00000024 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n";
    EXPECT_EQ(parse_error("CPU:\n" + good + "   0x00000001 0x00: eax=0x000a0671 ebx=0x0102").line, 3);
    EXPECT_EQ(parse_error("CPU:\n" + good + "   0x00000001 0x00: eax=0x000a0671 ebx=0x01020800 ecx=0xfffa3203 edx=0x1f8bfbf\n").line, 3);
    EXPECT_EQ(parse_error("CPU:\n" + good + "   0x00000001 0x00: eax=0x000a0671 ebx=0x01020800 ecx=0xfffa3203 edx=0x1f8bfbffff\n").line, 3);
    EXPECT_EQ(parse_error("CPU:\n" + good + "   0x00000001 0x00: eax=0x000a0671 ecx=0x01020800 ebx=0xfffa3203 edx=0x1f8bfbff\n").line, 3);
}

// ------------------------------------------------------------------ to_cpuid_r

TEST(CpuidCpuidR, WriterMatchesTheRealToolAndRoundTrips) {
    Dump d;
    d.format = "aida64";
    d.logical_cpus = 4;
    d.leaves = {
        Leaf{0x80000000u, 0, 0x80000008u, 0, 0, 0},
        Leaf{0, 0, 0xd, 0x756e6547u, 0x6c65746eu, 0x49656e69u},
        Leaf{0xd, 0x3e, 0x80, 0x340, 0, 0},
        Leaf{0xd, 0, 7, 0x340, 0x3c0, 0x40000000u},
    };
    const std::string out = to_cpuid_r(d);
    EXPECT_EQ(out,
              "CPU 0:\n"
              "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
              "   0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x000003c0 edx=0x40000000\n"
              "   0x0000000d 0x3e: eax=0x00000080 ebx=0x00000340 ecx=0x00000000 edx=0x00000000\n"
              "   0x80000000 0x00: eax=0x80000008 ebx=0x00000000 ecx=0x00000000 edx=0x00000000\n");
    const Dump back = parse_ok(out);
    EXPECT_EQ(back.format, "cpuid-r");
    ASSERT_EQ(back.leaves.size(), d.leaves.size());
    for (const Leaf& l : d.leaves) EXPECT_EQ(regs(back, l.leaf, l.subleaf), regs(d, l.leaf, l.subleaf));
}

// ------------------------------------------------------------------ hwloc

TEST(CpuidParseHwloc, MaskSelectsSubleaf) {
    const Dump d = parse_ok(
        "# mask e[abcd]x => e[abcd]x\n"
        "1 0 0 0 0 => d 68747541 444d4163 69746e65\n"
        "1 1 0 0 0 => 600f12 100800 1e98220b 178bfbff\n"
        "5 d 0 3e 0 => 80 340 0 0\n"
        "1 80000000 0 0 0 => 8000001e 68747541 444d4163 69746e65\n"
        "1 80000001 0 0 0 => 600f12 30000000 1c9bfff 2fd3fbff\n");
    EXPECT_EQ(d.format, "hwloc");
    EXPECT_EQ(regs(d, 0xD, 0x3E)[0], 0x80u);
    const Decoded dec = decode(d);
    EXPECT_EQ(dec.vendor, "AuthenticAMD");
    EXPECT_TRUE(dec.svm);
    EXPECT_EQ(dec.family, 0x15u);
    EXPECT_EQ(dec.model, 1u);
}

TEST(CpuidParseHwloc, MalformedLineNamesItsLine) {
    EXPECT_EQ(parse_error("# mask e[abcd]x => e[abcd]x\n1 0 0 0 0 => d 68747541 444d4163\n").line, 2);
    EXPECT_EQ(parse_error("# mask e[abcd]x => e[abcd]x\n1 0 0 0 0 => d 68747541 444d4163 123456789\n").line, 2);
    EXPECT_EQ(parse_error("# mask e[abcd]x => e[abcd]x\n1 0 0 0 0 => d 68747541 444d4163 69746e65\nhello\n").line, 3);
}

// ------------------------------------------------------------------ RJCP XML

TEST(CpuidParseRjcp, BomProcessorsAndUnsortedLeaves) {
    const std::string xml =
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
        "<cpuid type=\"x86\">\r\n"
        "\t<processor>\r\n"
        "\t\t<register eax=\"00000000\" ecx=\"00000000\">00000016,756E6547,6C65746E,49656E69</register>\r\n"
        "\t\t<register eax=\"80000000\" ecx=\"00000000\">80000008,00000000,00000000,00000000</register>\r\n"
        "\t\t<register eax=\"00000001\" ecx=\"00000000\">000906EA,00100800,FFFAFBFF,BFEBFBFF</register>\r\n"
        "\t\t<register eax=\"00000004\" ecx=\"00000001\">1C004122,01C0003F,0000003F,00000000</register>\r\n"
        "\t</processor>\r\n"
        "\t<processor>\r\n"
        "\t\t<register eax=\"00000000\" ecx=\"00000000\">00000016,756E6547,6C65746E,49656E69</register>\r\n"
        "\t</processor>\r\n"
        "</cpuid>\r\n";
    const Dump d = parse_ok(xml);
    EXPECT_EQ(d.format, "rjcp-xml");
    EXPECT_EQ(d.logical_cpus, 2);
    EXPECT_EQ(d.leaves.size(), 4u);
    EXPECT_EQ(regs(d, 4, 1)[0], 0x1C004122u);
    EXPECT_TRUE(decode(d).vmx);
    EXPECT_EQ(decode(d).model, 0x9Eu);

    // A corrupted register value is reported at its line.
    const std::string bad = replace_all(xml, "1C004122,01C0003F", "1C004122;01C0003F");
    EXPECT_EQ(parse_error(bad).line, 7);
    EXPECT_EQ(parse_error("<?xml version=\"1.0\"?>\n<html><body>hi</body></html>\n").line, 0);
}

// ------------------------------------------------------------------ Firecracker JSON

std::string fc_modifier(const char* leaf, const char* sub, uint32_t a, uint32_t b, uint32_t c, uint32_t e) {
    auto bits = [](uint32_t v) {
        std::string s = "0b";
        for (int i = 31; i >= 0; --i) s.push_back(((v >> i) & 1u) ? '1' : '0');
        return s;
    };
    return std::string("{\"leaf\":\"") + leaf + "\",\"subleaf\":\"" + sub + "\",\"flags\":0,\"modifiers\":[" +
           "{\"register\":\"eax\",\"bitmap\":\"" + bits(a) + "\"},{\"register\":\"ebx\",\"bitmap\":\"" + bits(b) +
           "\"},{\"register\":\"ecx\",\"bitmap\":\"" + bits(c) + "\"},{\"register\":\"edx\",\"bitmap\":\"" +
           bits(e) + "\"}]}";
}

TEST(CpuidParseFirecracker, FingerprintLeavesAndMsrs) {
    const std::string json =
        "{\n  \"firecracker_version\": \"1.16.0-dev\",\n  \"kernel_version\": \"6.1\",\n"
        "  \"guest_cpu_config\": {\n    \"kvm_capabilities\": [],\n    \"cpuid_modifiers\": [\n" +
        fc_modifier("0x0", "0x0", 0x10, 0x68747541, 0x444d4163, 0x69746e65) + ",\n" +
        fc_modifier("0x1", "0x0", 0x00a10f11, 0x00000800, 0xf6f83203, 0x178bfbff) + ",\n" +
        fc_modifier("0x40000000", "0x0", 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d) + ",\n" +
        fc_modifier("0x8000001d", "0x3", 0x163, 0x3c0003f, 0x7fff, 0x1) +
        "\n    ],\n    \"msr_modifiers\": [ {\"addr\": \"0x11\", \"bitmap\": \"0b" + std::string(63, '0') +
        "1\"} ]\n  }\n}\n";
    const Dump d = parse_ok(json);
    EXPECT_EQ(d.format, "firecracker-json");
    EXPECT_EQ(d.logical_cpus, 1);
    EXPECT_EQ(regs(d, 0x8000001D, 3)[0], 0x163u);
    EXPECT_EQ(d.msrs.at(0x11), 1u);
    const Decoded dec = decode(d);
    EXPECT_EQ(dec.vendor, "AuthenticAMD");
    EXPECT_TRUE(dec.hypervisor);
    EXPECT_EQ(dec.hypervisor_vendor, "KVMKVMKVM") << "trailing NULs stripped";

    // Templates use 'x' for don't-care bits: not real register values.
    std::string tmpl = json;
    tmpl.replace(tmpl.find("0b0000") + 2, 1, "x");
    EXPECT_NE(std::string(parse_error(tmpl).what()).find("template"), std::string::npos);
    EXPECT_GT(parse_error("{\n  \"guest_cpu_config\": {\n    \"cpuid_modifiers\": [ {\"leaf\": ]\n").line, 1);
    EXPECT_NE(std::string(parse_error("{\"hello\": 1}").what()).find("Firecracker"), std::string::npos);
}

// ------------------------------------------------------------------ IC Book Labs

TEST(CpuidParseIcBook, FirstTableOnly) {
    const std::string rule(85, '-');
    const std::string text =
        "Report file.\nCPUID v1.03.05\n(C)2020 IC Book Labs\n\n"
        "  Parameter                       Value                                  \n" +
        std::string(82, '-') +
        "\n  CPU vendor string               GenuineIntel                           \n" + std::string(82, '-') +
        "\n\n  Function    Subfunction   Pass        EAX         EBX         ECX         EDX       \n" + rule +
        "\n  00000000    00000000      00000000    00000002    756E6547    6C65746E    49656E69  \n"
        "  00000001    00000000      00000000    00000634    00000000    00000000    0080F9FF  \n" +
        rule +
        "\n\n  Function    Subfunction   Pass        EAX         EBX         ECX         EDX       \n" + rule +
        "\n  00000001    00000000      00000000    11111111    00000000    00000000    0080F9FF  \n" + rule + "\n";
    const Dump d = parse_ok(text);
    EXPECT_EQ(d.format, "icbooklabs");
    EXPECT_EQ(d.leaves.size(), 2u);
    EXPECT_EQ(decode(d).signature, 0x634u);

    const std::string bad = replace_all(text, "00000634    00000000    00000000    0080F9FF  \n",
                                        "00000634    00000000    00000000    0080F9\n");
    EXPECT_EQ(parse_error(bad).line, 13);
}

// ------------------------------------------------------------------ Fuchsia

TEST(CpuidParseFuchsia, DefineLines) {
    const Dump d = parse_ok(
        "// Copyright 2020 The Fuchsia Authors\n//\n\n"
        "DEFINE_CPUID_VALUES(0x00000000, 0x00, 0x0000000d, 0x68747541, 0x444d4163, 0x69746e65)\n"
        "DEFINE_CPUID_VALUES(0x00000001, 0x00, 0x00870f10, 0x00020800, 0x80180201, 0x178bfbff)\n"
        "DEFINE_CPUID_VALUES(0x40000000, 0x00, 0x40000006, 0x7263694d, 0x666f736f, 0x76482074)\n");
    EXPECT_EQ(d.format, "fuchsia");
    const Decoded dec = decode(d);
    EXPECT_TRUE(dec.hypervisor);
    EXPECT_EQ(dec.hypervisor_vendor, "Microsoft Hv");
    EXPECT_EQ(parse_error("DEFINE_CPUID_VALUES(0x00000000, 0x00, 0x0000000d, 0x68747541, 0x444d4163)\n").line, 1);
}

// ------------------------------------------------------------------ foreign and corrupt input

TEST(CpuidParseForeign, EmptyAndWhitespace) {
    for (const std::string& text : {""s, "\n\n"s, "   \r\n\t\n"s}) {
        const ParseError e = parse_error(text, "empty.txt");
        EXPECT_EQ(e.line, 0);
        EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
    }
}

TEST(CpuidParseForeign, BinaryGarbage) {
    std::mt19937 rng(42);
    std::string garbage(4096, '\0');
    for (char& c : garbage) c = static_cast<char>(rng() & 0xff);
    const ParseError e = parse_error(garbage, "garbage.bin");
    EXPECT_EQ(e.line, 0);
    EXPECT_NE(std::string(e.what()).find("binary"), std::string::npos) << e.what();
    // A gzip header is the most likely binary a user would pass.
    EXPECT_EQ(parse_error("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"s + garbage).line, 0);
}

TEST(CpuidParseForeign, ProcCpuinfoAndLscpu) {
    const ParseError cpuinfo = parse_error(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 60\n"
        "model name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz\nflags\t\t: fpu vme de pse tsc msr vmx\n",
        "cpuinfo");
    EXPECT_EQ(cpuinfo.line, 0);
    EXPECT_NE(std::string(cpuinfo.what()).find("/proc/cpuinfo"), std::string::npos) << cpuinfo.what();
    EXPECT_NE(std::string(cpuinfo.what()).find("cpuid -r"), std::string::npos) << cpuinfo.what();

    const ParseError lscpu = parse_error(
        "Architecture:        x86_64\nCPU op-mode(s):      32-bit, 64-bit\nVendor ID:           AuthenticAMD\n"
        "Virtualization:      AMD-V\n",
        "lscpu.txt");
    EXPECT_EQ(lscpu.line, 0);
    EXPECT_NE(std::string(lscpu.what()).find("lscpu"), std::string::npos) << lscpu.what();
}

TEST(CpuidParseForeign, ProseIsNotADump) {
    const ParseError e = parse_error("Hello,\nplease find the CPU details attached.\nCPUID Face: none\n", "mail.txt");
    EXPECT_EQ(e.line, 0);
    const std::string what = e.what();
    EXPECT_NE(what.find("mail.txt: not a CPUID dump: no register lines in any supported format"), std::string::npos)
        << what;
    EXPECT_NE(what.find("cpuid -r"), std::string::npos) << what;
    EXPECT_NE(what.find("AIDA64"), std::string::npos) << what;
}

TEST(CpuidParseForeign, RecognisedFormatWithoutRegisters) {
    const ParseError e = parse_error("------[ CPUID Registers / Logical CPU #0 ]------\n\nCPUID 0", "cut.txt");
    EXPECT_EQ(e.line, 3) << "a register line cut inside its leaf field";
    EXPECT_EQ(parse_error("  Function    Subfunction   Pass        EAX         EBX         ECX         EDX\n").line,
              0);
}

// ------------------------------------------------------------------ decode rules

Dump dump_of(std::vector<Leaf> leaves) {
    Dump d;
    d.format = "test";
    d.logical_cpus = 1;
    d.leaves = std::move(leaves);
    return d;
}

TEST(CpuidDecode, MaximumLeafGuards) {
    // Max basic leaf 0: leaf 1 holds garbage (libcpuid raw lists it anyway).
    Decoded d = decode(dump_of({Leaf{0, 0, 0, 0x756e6547, 0x6c65746e, 0x49656e69}, Leaf{1, 0, 0x633, 0, 0xffffffff, 0}}));
    EXPECT_FALSE(d.has_leaf1);
    EXPECT_FALSE(d.vmx);
    EXPECT_FALSE(d.hypervisor);

    // Intel P6 returns basic data for 80000000h: not a valid extended maximum.
    d = decode(dump_of({Leaf{0, 0, 2, 0x756e6547, 0x6c65746e, 0x49656e69},
                        Leaf{0x80000000u, 0, 0x00000002, 0x756e6547, 0x6c65746e, 0x49656e69},
                        Leaf{0x80000001u, 0, 0, 0, 0xffffffff, 0xffffffff}}));
    EXPECT_TRUE(d.has_extended);
    EXPECT_EQ(d.max_extended, 0u);
    EXPECT_FALSE(d.svm);
    EXPECT_FALSE(d.long_mode);

    // SVM feature leaf above the maximum is not read.
    d = decode(dump_of({Leaf{0x80000000u, 0, 0x80000001u, 0, 0, 0}, Leaf{0x80000001u, 0, 0, 0, 4, 0},
                        Leaf{0x8000000au, 0, 1, 8, 0, 1}}));
    EXPECT_TRUE(d.svm);
    EXPECT_TRUE(d.svm_features.empty());
    EXPECT_FALSE(d.svm_revision.has_value());

    // No 80000000h at all.
    d = decode(dump_of({Leaf{0, 0, 1, 0, 0, 0}}));
    EXPECT_FALSE(d.has_extended);
}

TEST(CpuidDecode, VendorBytesFamilyModelBrand) {
    // "  Shanghai  " keeps its spaces; family 7 (no extended fields folded in).
    Decoded d = decode(dump_of({Leaf{0, 0, 0x1b, 0x68532020, 0x20206961, 0x68676e61}, Leaf{1, 0, 0x000107b5, 0, 0, 0}}));
    EXPECT_EQ(d.vendor, "  Shanghai  ");
    EXPECT_EQ(d.family, 7u);
    EXPECT_EQ(d.model, 0xBu);
    EXPECT_EQ(d.stepping, 5u);

    // Family 0Fh folds in the extended family and model (AMD Zen 4: 0x00A60F12).
    d = decode(dump_of({Leaf{0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65}, Leaf{1, 0, 0x00a60f12, 0, 0, 0}}));
    EXPECT_EQ(d.family, 0x19u);
    EXPECT_EQ(d.model, 0x61u);
    EXPECT_EQ(d.stepping, 2u);
    // Family 5 does not use the extended model field.
    d = decode(dump_of({Leaf{0, 0, 1, 0, 0, 0}, Leaf{1, 0, 0x00010543, 0, 0, 0}}));
    EXPECT_EQ(d.family, 5u);
    EXPECT_EQ(d.model, 4u);

    // Brand: leading/embedded runs of spaces collapse, NUL terminates.
    auto le = [](const char* s) {
        return static_cast<uint32_t>(static_cast<unsigned char>(s[0])) |
               static_cast<uint32_t>(static_cast<unsigned char>(s[1])) << 8 |
               static_cast<uint32_t>(static_cast<unsigned char>(s[2])) << 16 |
               static_cast<uint32_t>(static_cast<unsigned char>(s[3])) << 24;
    };
    // 48 bytes: 4 leading spaces, 42 characters, NUL padding.
    const char* b = "    Intel(R)  Xeon(R) CPU  E5-2680 0 @ 2.70GHz\0\0\0\0\0\0\0\0\0\0";
    std::vector<Leaf> v = {Leaf{0x80000000u, 0, 0x80000004u, 0, 0, 0}};
    for (uint32_t i = 0; i < 3; ++i)
        v.push_back(Leaf{0x80000002u + i, 0, le(b + 16 * i), le(b + 16 * i + 4), le(b + 16 * i + 8), le(b + 16 * i + 12)});
    EXPECT_EQ(decode(dump_of(v)).brand, "Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz");
}

TEST(CpuidDecode, HypervisorVendorOnlyWhenLeafPresentAndNonZero) {
    EXPECT_FALSE(decode(dump_of({Leaf{0, 0, 1, 0, 0, 0}, Leaf{1, 0, 0, 0, 0x80000000u, 0}})).hypervisor_vendor);
    EXPECT_FALSE(decode(dump_of({Leaf{0x40000000u, 0, 0x40000001u, 0, 0, 0}})).hypervisor_vendor);
    const auto hv = decode(dump_of({Leaf{0x40000000u, 0, 0x40000010u, 0x61774d56, 0x4d566572, 0x65726177}})).hypervisor_vendor;
    EXPECT_EQ(hv, "VMwareVMware");
}

TEST(CpuidDecode, JsonKeysAndValues) {
    const Dump d = parse_ok(
        "CPU 0:\n"
        "   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n"
        "   0x00000001 0x00: eax=0x00a20f12 ebx=0x000c0800 ecx=0xfef8320b edx=0x178bfbff\n"
        "   0x40000000 0x00: eax=0x40000001 ebx=0x4b4d564b ecx=0x564b4d56 edx=0x0000004d\n"
        "   0x80000000 0x00: eax=0x80000021 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n"
        "   0x80000001 0x00: eax=0x00a20f12 ebx=0x20000000 ecx=0x75c237ff edx=0x2fd3fbff\n"
        "   0x8000000a 0x00: eax=0x00000001 ebx=0x00000010 ecx=0x00000000 edx=0x00000009\n");
    const auto j = to_json(decode(d));
    std::vector<std::string> keys;
    for (const auto& [k, v] : j.items()) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"vendor", "brand", "family", "model", "stepping", "signature",
                                              "max_basic_leaf", "max_extended_leaf", "vmx", "svm", "hypervisor",
                                              "hypervisor_vendor", "long_mode", "svm_features", "svm_revision",
                                              "svm_asids", "mem_encryption"}));
    EXPECT_EQ(j["vendor"], "AuthenticAMD");
    EXPECT_EQ(j["brand"], "");
    EXPECT_EQ(j["family"], 25);
    EXPECT_EQ(j["signature"], "0x00a20f12");
    EXPECT_EQ(j["max_basic_leaf"], "0x00000010");
    EXPECT_EQ(j["max_extended_leaf"], "0x80000021");
    EXPECT_EQ(j["svm"], true);
    EXPECT_EQ(j["hypervisor"], true);
    EXPECT_EQ(j["hypervisor_vendor"], "KVMKVMKVM");
    EXPECT_EQ(j["svm_features"], (nlohmann::ordered_json{"npt", "nrip_save"}));
    EXPECT_EQ(j["svm_revision"], 1);
    EXPECT_EQ(j["svm_asids"], 16);
    EXPECT_TRUE(j["mem_encryption"].is_array());
    EXPECT_TRUE(j["mem_encryption"].empty());

    // Without SVM there is no svm_features key; no 40000000h gives null.
    const auto intel = to_json(decode(parse_ok(kAidaIntel)));
    EXPECT_FALSE(intel.contains("svm_features"));
    EXPECT_TRUE(intel["hypervisor_vendor"].is_null());
    EXPECT_NO_THROW((void)intel.dump());
}

TEST(CpuidDecode, JsonOfGarbageRegistersIsValidUtf8) {
    const auto j = to_json(decode(dump_of({Leaf{0, 0, 1, 0xfffefdfc, 0x00c3c2c1, 0x80818283}})));
    EXPECT_NO_THROW((void)j.dump());
}

// ------------------------------------------------------------------ live machine

// Absolute path of `cpuid` on PATH, empty when absent.
std::string find_cpuid_binary() {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const std::string p = (dir.empty() ? "." : dir) + "/cpuid";
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return {};
}

std::string run(const std::string& cmd, int& status) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) {
        status = -1;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    status = ::pclose(f);
    return out;
}

// First value of `key` in /proc/cpuinfo; empty when absent.
std::string cpuinfo_value(const std::string& key) {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon);
        while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
        if (k != key) continue;
        std::string v = line.substr(colon + 1);
        return v.empty() ? v : v.substr(v.find_first_not_of(' ') == std::string::npos ? v.size() : v.find_first_not_of(' '));
    }
    return {};
}

TEST(CpuidLive, CpuidToolOutputParses) {
    const std::string bin = find_cpuid_binary();
    if (bin.empty()) GTEST_SKIP() << "the `cpuid` tool (Debian package cpuid) is not installed";
    int status = 0;
    const std::string out = run("'" + bin + "' -r -1 2>/dev/null", status);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "cpuid -r -1 failed: " << status;
    const Dump d = parse_ok(out, "cpuid -r -1");
    EXPECT_EQ(d.format, "cpuid-r");
    EXPECT_EQ(d.logical_cpus, 1);
    const Decoded dec = decode(d);
    const std::string vendor = cpuinfo_value("vendor_id");
    if (vendor.empty()) GTEST_SKIP() << "/proc/cpuinfo has no vendor_id (not x86 Linux?)";
    EXPECT_EQ(dec.vendor, vendor);
    std::istringstream flags(cpuinfo_value("flags"));
    bool kernel_hypervisor = false, kernel_lm = false;
    for (std::string f; flags >> f;) {
        kernel_hypervisor |= f == "hypervisor";
        kernel_lm |= f == "lm";
    }
    EXPECT_EQ(dec.hypervisor, kernel_hypervisor);
    EXPECT_EQ(dec.long_mode, kernel_lm);
    EXPECT_FALSE(dec.brand.empty());

    // The writer re-creates a dump that decodes identically.
    EXPECT_EQ(to_json(decode(parse_ok(to_cpuid_r(d)))), to_json(dec));

    // Without -1 the tool prints one block per logical CPU.
    const std::string all = run("'" + bin + "' -r 2>/dev/null", status);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        int headers = 0;
        std::istringstream lines(all);
        for (std::string l; std::getline(lines, l);) headers += l.rfind("CPU ", 0) == 0 && l.back() == ':';
        const Dump many = parse_ok(all, "cpuid -r");
        EXPECT_EQ(many.logical_cpus, headers);
        EXPECT_EQ(decode(many).vendor, vendor);
    }
}

}  // namespace
