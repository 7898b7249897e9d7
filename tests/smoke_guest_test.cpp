// The builtin smoke guest (src/guest/builtin) under real QEMU, no libvirt:
// ladder step (b) through run_qemu_direct(), and the serial protocol parser
// shared with the libvirt path.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "smoke/guest_paths.hpp"
#include "smoke/qemu_direct.hpp"
#include "smoke/serial_protocol.hpp"

namespace fs = std::filesystem;
using namespace kvmready::smoke;

namespace {

// ---- serial protocol ------------------------------------------------------

TEST(SerialProtocol, ParsesReportWithValues) {
    const auto r = parse_serial_line("KVMREADY disk ok nonce=abc sectors=2048 found=cmdline");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->stage, "disk");
    EXPECT_TRUE(r->ok);
    EXPECT_EQ(r->values.at("nonce"), "abc");
    EXPECT_EQ(r->values.at("sectors"), "2048");
    const auto f = parse_serial_line("KVMREADY nic fail reason=no-virtio-net-device");
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->ok);
    EXPECT_EQ(f->values.at("reason"), "no-virtio-net-device");
}

TEST(SerialProtocol, IgnoresGarbageAndNearMisses) {
    EXPECT_FALSE(parse_serial_line(""));
    EXPECT_FALSE(parse_serial_line("SeaBIOS (version 1.16.2-debian-1.16.2-1)"));
    EXPECT_FALSE(parse_serial_line("KVMREADY"));
    EXPECT_FALSE(parse_serial_line("KVMREADY boot"));
    EXPECT_FALSE(parse_serial_line("KVMREADY boot maybe"));
    EXPECT_FALSE(parse_serial_line("KVMREADY Boot ok"));          // stage names are lowercase
    EXPECT_FALSE(parse_serial_line("kvmready boot ok"));
    EXPECT_FALSE(parse_serial_line(std::string("\xff\xfe\x00KVMREADX boot ok", 18)));
}

TEST(SerialProtocol, FindsReportAfterFirmwareBytesAndEscapes) {
    // SeaBIOS leaves "Booting from ROM.." on the row our first line starts on.
    const auto r = parse_serial_line("Booting from ROM..KVMREADY boot ok entry=pvh");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->stage, "boot");
    EXPECT_EQ(r->values.at("entry"), "pvh");
    const auto e = parse_serial_line("\x1b[2J\x1b[0mKVMREADY cpu ok vendor=GenuineIntel");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->values.at("vendor"), "GenuineIntel");
}

TEST(SerialProtocol, ToleratesCrLf) {
    const auto r = parse_serial_line("KVMREADY done ok\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->stage, "done");
    EXPECT_TRUE(r->values.empty());
    const auto v = parse_serial_line("KVMREADY nic ok mac=52:54:00:01:02:03\r");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->values.at("mac"), "52:54:00:01:02:03");  // no CR glued to the value
}

TEST(SerialProtocol, LogReassemblesPartialLines) {
    SerialLog log;
    const std::vector<std::string> chunks = {"noise\nKVMREADY bo", "ot ok entry=", "multiboot\r\nKVMREADY cpu ok\nKVMREADY dis",
                                             "k ok nonce=12"};
    EXPECT_TRUE(log.feed(chunks[0]).empty());
    EXPECT_TRUE(log.feed(chunks[1]).empty());
    auto got = log.feed(chunks[2]);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].stage, "boot");
    EXPECT_EQ(got[0].values.at("entry"), "multiboot");
    EXPECT_EQ(got[1].stage, "cpu");
    // A line cut off by the guest's death is not a report.
    EXPECT_TRUE(log.feed(chunks[3]).empty());
    EXPECT_EQ(log.bytes_seen(), chunks[0].size() + chunks[1].size() + chunks[2].size() + chunks[3].size());
    EXPECT_EQ(log.tail(), chunks[0] + chunks[1] + chunks[2] + chunks[3]);
}

TEST(SerialProtocol, LogKeepsOnlyTheTail) {
    SerialLog log(64);
    std::string junk(10000, 'x');
    junk += "\nKVMREADY boot ok\n";
    const auto got = log.feed(junk);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(log.tail().size(), 64u);
    EXPECT_EQ(log.tail().substr(64 - 18), "\nKVMREADY boot ok\n");
    // A guest spewing without newlines cannot make the parser hoard memory
    // nor lose the next real line.
    SerialLog spew;
    for (int i = 0; i < 1000; ++i) spew.feed(std::string(1000, 'y'));
    EXPECT_EQ(spew.feed("\nKVMREADY done ok\n").size(), 1u);
}

TEST(SerialProtocol, TrackerJudgesStagesAndExpectations) {
    StageTracker t(builtin_guest_stages());
    t.expect("disk", "nonce", "aa");
    t.expect("nic", "mac", "52:54:00:00:00:01");
    t.on_report(*parse_serial_line("KVMREADY boot ok entry=pvh"), 10);
    t.on_report(*parse_serial_line("KVMREADY cpu ok"), 12);
    t.on_report(*parse_serial_line("KVMREADY disk ok nonce=bb"), 20);
    EXPECT_TRUE(t.first_marker_seen());
    EXPECT_EQ(t.first_marker_ms(), 10);
    EXPECT_TRUE(t.failed());
    EXPECT_EQ(t.failure_class(), "wrong_nonce");
    EXPECT_FALSE(t.passed());
    const auto stages = t.stages();
    ASSERT_EQ(stages.size(), 5u);
    EXPECT_EQ(stages[2].name, "disk");
    EXPECT_EQ(stages[2].status, "fail");
    EXPECT_NE(stages[2].detail.find("nonce=bb"), std::string::npos);
    EXPECT_EQ(stages[2].ms, 8);
    EXPECT_EQ(stages[3].name, "nic");
    EXPECT_EQ(stages[3].status, "not_reached");
    EXPECT_EQ(stages[4].status, "not_reached");
    EXPECT_EQ(t.last_stage(), "disk");
}

TEST(SerialProtocol, TrackerPassesOnlyWithEveryStage) {
    StageTracker t(builtin_guest_stages());
    t.expect("nic", "mac", "52:54:00:00:00:01");
    t.on_report(*parse_serial_line("KVMREADY boot ok"), 1);
    t.on_report(*parse_serial_line("KVMREADY boot fail reason=late-duplicate"), 2);  // first report of a stage wins
    t.on_report(*parse_serial_line("KVMREADY disk ok nonce=x"), 3);
    t.on_report(*parse_serial_line("KVMREADY nic ok mac=52:54:00:00:00:01"), 4);
    t.on_report(*parse_serial_line("KVMREADY done ok"), 5);
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.failed());
    EXPECT_FALSE(t.passed()) << "cpu never came";
    t.on_report(*parse_serial_line("KVMREADY cpu ok"), 6);
    EXPECT_TRUE(t.passed());

    StageTracker g(builtin_guest_stages());
    g.on_report(*parse_serial_line("KVMREADY boot ok"), 1);
    g.on_report(*parse_serial_line("KVMREADY disk fail reason=no-virtio-blk-device"), 2);
    EXPECT_EQ(g.failure_class(), "guest_failure");
    EXPECT_NE(g.first_failure()->detail.find("no-virtio-blk-device"), std::string::npos);
}

// ---- guest file lookup ----------------------------------------------------

TEST(SmokeGuestPaths, BuildTreeFirstThenInstallDirThenEnvironment) {
    char templ[] = "/tmp/kvmready-guest-dir-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    const std::string dir = templ;
    const std::string name = "kvmready-lookup-test-file";
    { FILE* f = std::fopen((dir + "/" + name).c_str(), "w"); ASSERT_NE(f, nullptr); std::fclose(f); }
    const char* old = std::getenv("KVMREADY_GUEST_DIR");
    const std::string saved = old ? old : "";
    std::vector<std::string> searched;
    EXPECT_EQ(guest_file_path(name, &searched), "") << "not there before the variable is set";
    ::setenv("KVMREADY_GUEST_DIR", dir.c_str(), 1);
    searched.clear();
    const auto found = guest_file_path(name, &searched);
    if (old) ::setenv("KVMREADY_GUEST_DIR", saved.c_str(), 1);
    else ::unsetenv("KVMREADY_GUEST_DIR");
    std::remove((dir + "/" + name).c_str());
    ::rmdir(dir.c_str());
    EXPECT_EQ(found, dir + "/" + name);
    ASSERT_EQ(searched.size(), 3u);
    EXPECT_NE(searched[0].find("/guest/" + name), std::string::npos) << "the build tree comes first: " << searched[0];
    EXPECT_NE(searched[1].find("/../lib/kvmready/" + name), std::string::npos) << searched[1];
    // The build tree's guest is what the smoke test boots from a build.
    const auto guest = builtin_guest_path();
    if (!guest.empty()) {
        EXPECT_EQ(guest.rfind(searched[0].substr(0, searched[0].size() - name.size()), 0), 0u) << guest;
    }
}

// ---- real QEMU ----------------------------------------------------------------

std::string find_in_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= p.size()) {
        const auto end = p.find(':', start);
        const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
        const std::string full = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(full.c_str(), X_OK) == 0) return full;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return "";
}

// Every test gets its own run-directory parent, so it can prove that the
// run left nothing behind.
class SmokeGuest : public ::testing::Test {
protected:
    void SetUp() override {
        if (find_in_path("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86_64 is not installed (apt install qemu-system-x86)";
        if (builtin_guest_path().empty()) GTEST_SKIP() << "the builtin guest was not built (no -m32 support in the C compiler)";
        char templ[] = "/tmp/kvmready-smoke-test-XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        parent_ = templ;
    }
    void TearDown() override {
        if (parent_.empty()) return;
        std::error_code ec;
        EXPECT_TRUE(fs::is_empty(parent_, ec)) << "the run left files in " << parent_;
        fs::remove_all(parent_, ec);
    }
    QemuDirectConfig config(const std::string& machine, const std::string& accel = "tcg") {
        QemuDirectConfig c;
        c.machine = machine;
        c.accel = accel;
        c.timeout_ms = 20000;
        c.tmp_parent = parent_;
        return c;
    }
    static const SmokeStage* stage(const SmokeStep& s, const std::string& name) {
        for (const auto& st : s.stages)
            if (st.name == name) return &st;
        return nullptr;
    }
    static std::string dump(const SmokeStep& s) {
        std::string o = "failure=" + s.failure + " message=" + s.message + "\nserial:\n" + s.serial_tail;
        if (s.details.contains("qemu_stderr")) o += "\nstderr:\n" + s.details["qemu_stderr"].get<std::string>();
        return o;
    }
    // Every stage passed and what the guest read is what the host wrote.
    void expect_full_pass(const SmokeStep& s, const std::string& entry, const std::string& transport_prefix) {
        ASSERT_TRUE(s.passed) << dump(s);
        EXPECT_TRUE(s.failure.empty());
        for (const auto* name : {"boot", "cpu", "disk", "nic", "done"}) {
            const auto* st = stage(s, name);
            ASSERT_NE(st, nullptr) << name;
            EXPECT_EQ(st->status, "pass") << name;
        }
        EXPECT_EQ(stage(s, "boot")->values.at("entry"), entry);
        const auto* disk = stage(s, "disk");
        ASSERT_EQ(disk->values.count("nonce"), 1u);
        EXPECT_EQ(disk->values.at("nonce"), s.details["nonce"].get<std::string>());
        EXPECT_EQ(disk->values.at("nonce").size(), 64u);
        EXPECT_EQ(disk->values.at("sectors"), "2048");
        EXPECT_EQ(disk->values.at("transport").rfind(transport_prefix, 0), 0u) << disk->values.at("transport");
        EXPECT_EQ(stage(s, "nic")->values.at("mac"), s.details["mac"].get<std::string>());
        EXPECT_GT(s.split.boot_ms, 0);
        EXPECT_LE(stage(s, "boot")->at_ms, stage(s, "done")->at_ms);
    }
    std::string parent_;
};

TEST_F(SmokeGuest, TcgMicrovmPassesEveryStage) {
    const auto s = run_qemu_direct(config("microvm"));
    expect_full_pass(s, "pvh", "mmio");
    EXPECT_EQ(s.id, "b");
    EXPECT_EQ(s.accel, "tcg");
    // ACPI on (the default): QEMU describes the devices in the DSDT only, so
    // the guest finds them by probing microvm's virtio-mmio window...
    EXPECT_EQ(stage(s, "disk")->values.at("found"), "probe");
    // ...and powers off through the GED sleep register: QEMU exits by itself.
    EXPECT_EQ(s.details["qemu_exit"], "exit 0");
}

TEST_F(SmokeGuest, TcgMicrovmWithoutAcpiReadsDevicesFromTheCommandLine) {
    auto c = config("microvm");
    c.acpi = false;
    c.append = "console=none";
    const auto s = run_qemu_direct(c);
    expect_full_pass(s, "pvh", "mmio");
    // QEMU 7.2 appends virtio_mmio.device=512@0x...:IRQ to the PVH command
    // line when microvm has no ACPI; the guest used it.
    EXPECT_EQ(stage(s, "disk")->values.at("found"), "cmdline");
    EXPECT_EQ(stage(s, "nic")->values.at("found"), "cmdline");
    // No GED without ACPI: the guest's triple fault plus -no-reboot end QEMU.
    EXPECT_EQ(s.details["qemu_exit"], "exit 0");
}

TEST_F(SmokeGuest, TcgPcPassesEveryStage) {
    const auto s = run_qemu_direct(config("pc"));
    expect_full_pass(s, "pvh", "pci-legacy");
    // PIIX4 PM1a_CNT soft-off: QEMU exits on its own well within the grace period.
    EXPECT_EQ(s.details["qemu_exit"], "exit 0");
}

TEST_F(SmokeGuest, TcgMicrovmModernVirtioMmio) {
    auto c = config("microvm");
    c.extra_args = {"-global", "virtio-mmio.force-legacy=false"};
    const auto s = run_qemu_direct(c);
    expect_full_pass(s, "pvh", "mmio-v2");
}

TEST_F(SmokeGuest, TcgQ35PassesEveryStage) {
    // Devices on pcie.0 itself stay transitional (legacy I/O BAR); behind a
    // PCIe root port QEMU makes them modern-only, which the guest reports
    // as reason=modern-only-virtio-pci.
    const auto s = run_qemu_direct(config("q35"));
    expect_full_pass(s, "pvh", "pci-legacy");
    // ICH9 PM1a_CNT soft-off.
    EXPECT_EQ(s.details["qemu_exit"], "exit 0");
}

TEST_F(SmokeGuest, MultibootImageBootsOnPc) {
    const auto mb = builtin_guest_multiboot_path();
    if (mb.empty()) GTEST_SKIP() << "kvmready-guest-multiboot.elf was not built";
    auto c = config("pc");
    c.guest = mb;
    const auto s = run_qemu_direct(c);
    expect_full_pass(s, "multiboot", "pci-legacy");
}

TEST_F(SmokeGuest, MissingNonceGivesDiskFail) {
    auto c = config("microvm");
    c.sector0 = std::string(512, '\0');
    const auto s = run_qemu_direct(c);
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "guest_failure") << dump(s);
    const auto* disk = stage(s, "disk");
    ASSERT_NE(disk, nullptr) << dump(s);
    EXPECT_EQ(disk->status, "fail");
    EXPECT_EQ(disk->values.at("reason"), "no-nonce-in-sector-0");
    // The guest goes on: the NIC is still judged.
    ASSERT_NE(stage(s, "nic"), nullptr);
    EXPECT_EQ(stage(s, "nic")->status, "pass");
    EXPECT_EQ(stage(s, "done")->status, "fail");
    EXPECT_NE(s.serial_tail.find("KVMREADY disk fail"), std::string::npos);
}

TEST_F(SmokeGuest, WrongNonceIsCaughtByTheHost) {
    auto c = config("microvm");
    c.sector0 = "KVMREADY-NONCE " + std::string(64, 'e') + "\n";
    const auto s = run_qemu_direct(c);
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "wrong_nonce") << dump(s);
    const auto* disk = stage(s, "disk");
    ASSERT_NE(disk, nullptr);
    EXPECT_EQ(disk->status, "fail");
    EXPECT_EQ(disk->values.at("nonce"), std::string(64, 'e'));
}

TEST_F(SmokeGuest, NoNicGivesNicFail) {
    for (const char* machine : {"microvm", "pc"}) {
        auto c = config(machine);
        c.nic = false;
        const auto s = run_qemu_direct(c);
        EXPECT_FALSE(s.passed) << machine;
        EXPECT_EQ(s.failure, "guest_failure") << machine << dump(s);
        const auto* nic = stage(s, "nic");
        ASSERT_NE(nic, nullptr) << machine;
        EXPECT_EQ(nic->status, "fail");
        EXPECT_EQ(nic->values.at("reason"), "no-virtio-net-device");
        EXPECT_EQ(stage(s, "disk")->status, "pass") << machine;
    }
}

TEST_F(SmokeGuest, NoDiskIsReportedNotAwaited) {
    auto c = config("microvm");
    c.disk = false;
    const auto s = run_qemu_direct(c);
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "guest_failure") << dump(s);
    const auto* disk = stage(s, "disk");
    ASSERT_NE(disk, nullptr);
    EXPECT_EQ(disk->values.at("reason"), "no-virtio-blk-device");
    EXPECT_TRUE(stage(s, "done") != nullptr) << "the guest must finish, not hang";
    EXPECT_LT(s.elapsed_ms, 10000);
}

// A PVH ELF whose code is `cli; hlt` forever: boots, never says a word.
// Hand-assembled so the test needs no compiler: ELF header, one PT_LOAD for
// the whole file at 1 MiB, one PT_NOTE with the PVH entry, then the code.
std::string silent_pvh_elf() {
    std::string f(144, '\0');
    auto put16 = [&](size_t at, uint16_t v) { f[at] = char(v & 0xff); f[at + 1] = char(v >> 8); };
    auto put32 = [&](size_t at, uint32_t v) { for (int i = 0; i < 4; ++i) f[at + i] = char((v >> (8 * i)) & 0xff); };
    const uint32_t base = 0x100000, note = 116, code = 140;
    f[0] = 0x7f; f[1] = 'E'; f[2] = 'L'; f[3] = 'F';
    f[4] = 1; f[5] = 1; f[6] = 1;                  // ELFCLASS32, little-endian, version 1
    put16(16, 2); put16(18, 3); put32(20, 1);       // ET_EXEC, EM_386
    put32(24, base + code); put32(28, 52);          // e_entry, e_phoff
    put16(40, 52); put16(42, 32); put16(44, 2);     // e_ehsize, e_phentsize, e_phnum
    put32(52, 1); put32(56, 0); put32(60, base); put32(64, base);            // PT_LOAD
    put32(68, 144); put32(72, 144); put32(76, 5); put32(80, 0x1000);
    put32(84, 4); put32(88, note); put32(92, base + note); put32(96, base + note);  // PT_NOTE
    put32(100, 24); put32(104, 24); put32(108, 4); put32(112, 4);
    put32(note, 4); put32(note + 4, 8); put32(note + 8, 18);  // "Xen", 8-byte desc, PHYS32_ENTRY
    f[note + 12] = 'X'; f[note + 13] = 'e'; f[note + 14] = 'n';
    put32(note + 16, base + code);
    f[code] = char(0xfa); f[code + 1] = char(0xf4); f[code + 2] = char(0xeb); f[code + 3] = char(0xfd);  // cli; hlt; jmp hlt
    return f;
}

std::string write_file(const std::string& path, const std::string& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return "";
    std::fwrite(data.data(), 1, data.size(), f);
    std::fclose(f);
    return path;
}

TEST_F(SmokeGuest, SilentGuestOnMicrovmIsNoSerialOutput) {
    const std::string elf = write_file(parent_ + "-silent.elf", silent_pvh_elf());
    ASSERT_FALSE(elf.empty());
    auto c = config("microvm");
    c.guest = elf;
    c.timeout_ms = 2000;
    const auto s = run_qemu_direct(c);
    std::remove(elf.c_str());
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "no_serial_output") << dump(s);
    EXPECT_EQ(s.details["qemu_exit"], "killed by kvmready");
    EXPECT_LT(s.elapsed_ms, 6000);
    ASSERT_EQ(s.stages.size(), 5u);
    for (const auto& st : s.stages) EXPECT_EQ(st.status, "not_reached");
}

TEST_F(SmokeGuest, SilentGuestOnPcIsStalledBeforeFirstMarker) {
    const std::string elf = write_file(parent_ + "-silent.elf", silent_pvh_elf());
    ASSERT_FALSE(elf.empty());
    // SeaBIOS writes to the serial port only when QEMU names it one
    // (etc/sercon-port, what -nographic sets): a firmware that talks, then a
    // guest that never does.
    const std::string sercon = write_file(parent_ + "-sercon", std::string("\xf8\x03", 2));
    ASSERT_FALSE(sercon.empty());
    auto c = config("pc");
    c.guest = elf;
    c.timeout_ms = 20000;
    c.first_marker_ms = 2500;  // SeaBIOS prints its banner long before this
    c.extra_args = {"-fw_cfg", "name=etc/sercon-port,file=" + sercon};
    const auto s = run_qemu_direct(c);
    std::remove(elf.c_str());
    std::remove(sercon.c_str());
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "stalled_before_first_marker") << dump(s);
    EXPECT_NE(s.serial_tail.find("SeaBIOS"), std::string::npos) << s.serial_tail;
    EXPECT_LT(s.elapsed_ms, 8000);
}

TEST_F(SmokeGuest, UnbootableKernelIsStartFailed) {
    const std::string bogus = parent_ + "-bogus.bin";
    {
        FILE* f = std::fopen(bogus.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::fputs("this is not a kernel\n", f);
        std::fclose(f);
    }
    auto c = config("microvm");
    c.guest = bogus;
    const auto s = run_qemu_direct(c);
    std::remove(bogus.c_str());
    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "start_failed") << dump(s);
    EXPECT_NE(s.message.find("QEMU failed to start"), std::string::npos) << s.message;
}

TEST_F(SmokeGuest, MissingQemuIsPrerequisite) {
    auto c = config("microvm");
    c.qemu = "/nonexistent/qemu-system-x86_64";
    const auto s = run_qemu_direct(c);
    EXPECT_FALSE(s.passed);
    EXPECT_FALSE(s.ran);
    EXPECT_EQ(s.failure, "prerequisite");
}

// A child of this process (any thread's) has become QEMU.
bool qemu_child_running() {
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
        std::ifstream children(task.path() / "children");
        for (std::string pid; children >> pid;) {
            std::ifstream comm("/proc/" + pid + "/comm");
            std::string name;
            if (std::getline(comm, name) && name.rfind("qemu-system", 0) == 0) return true;
        }
    }
    return false;
}

TEST_F(SmokeGuest, CancelKillsQemuAndCleansUp) {
    auto c = config("microvm");
    c.extra_args = {"-S"};
    // Cancelled once QEMU runs (paused by -S, it would never end by itself).
    c.cancelled = [] { return qemu_child_running(); };
    const auto s = run_qemu_direct(c);
    EXPECT_EQ(s.failure, "interrupted");
    EXPECT_LT(s.elapsed_ms, 5000);
    // TearDown checks the run directory is gone.
}

// /dev/kvm answers: API version 12 and a VM can be created.
std::string kvm_unusable_reason() {
    const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return std::string("cannot open /dev/kvm: ") + std::strerror(errno);
    const int api = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    std::string why;
    if (api != KVM_API_VERSION) {
        why = "KVM_GET_API_VERSION returned " + std::to_string(api);
    } else {
        const int vm = ::ioctl(fd, KVM_CREATE_VM, 0);
        if (vm < 0) why = std::string("KVM_CREATE_VM failed: ") + std::strerror(errno);
        else ::close(vm);
    }
    ::close(fd);
    return why;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? -1 : v[v.size() / 2];
}

TEST_F(SmokeGuest, KvmMicrovmReachesFirstMarkerFast) {
    if (const auto why = kvm_unusable_reason(); !why.empty()) GTEST_SKIP() << "KVM does not work here: " << why;
    std::vector<double> first, total;
    for (int i = 0; i < 3; ++i) {
        auto c = config("microvm", "kvm");
        c.timeout_ms = 10000;
        const auto s = run_qemu_direct(c);
        expect_full_pass(s, "pvh", "mmio");
        if (!s.passed) return;
        EXPECT_EQ(stage(s, "cpu")->values.at("hypervisor"), "KVMKVMKVM");
        // Powered off through microvm's GED: where KVM cannot deliver the
        // fallback triple fault (kvm_pvm), anything else would show here.
        EXPECT_EQ(s.details["qemu_exit"], "exit 0") << s.details.dump();
        first.push_back(s.split.boot_ms);
        total.push_back(stage(s, "done")->at_ms);
    }
    const double m = median(first);
    RecordProperty("kvm_microvm_first_marker_ms_median", std::to_string(m));
    std::printf("KVM microvm: first marker median %.1f ms, done median %.1f ms\n", m, median(total));
    // The figure (< 100 ms from QEMU's spawn) is printed for the
    // README, not asserted: speed is the benchmarks' business.
}

TEST_F(SmokeGuest, KvmMicrovmWithoutAcpiStillEndsTheRun) {
    if (const auto why = kvm_unusable_reason(); !why.empty()) GTEST_SKIP() << "KVM does not work here: " << why;
    auto c = config("microvm", "kvm");
    c.acpi = false;
    c.timeout_ms = 10000;
    const auto s = run_qemu_direct(c);
    expect_full_pass(s, "pvh", "mmio");
    // Some KVM flavours (kvm_pvm) cannot deliver the triple fault: they
    // report a KVM internal error and pause the VM forever, or (newer
    // kernels) just stop running it. The run must still end right after
    // `done`, not at the timeout, and say which happened.
    EXPECT_LT(s.elapsed_ms, 5000) << s.details.dump();
    if (s.details["qemu_exit"] != "exit 0") {
        const std::string note = s.details.value("note", "");
        const bool explained = note.find("KVM internal error") != std::string::npos ||
                               (s.details["qemu_exit"] == "killed by kvmready" && note.find("had not exited") != std::string::npos);
        EXPECT_TRUE(explained) << s.details.dump();
    }
}

// Medians for the README: TCG pc, TCG microvm (and KVM microvm above).
TEST_F(SmokeGuest, TcgTimings) {
    for (const char* machine : {"microvm", "pc"}) {
        std::vector<double> first, done, elapsed;
        for (int i = 0; i < 5; ++i) {
            const auto s = run_qemu_direct(config(machine));
            ASSERT_TRUE(s.passed) << machine << dump(s);
            first.push_back(s.split.boot_ms);
            done.push_back(stage(s, "done")->at_ms);
            elapsed.push_back(s.elapsed_ms);
        }
        std::printf("TCG %s: first marker median %.1f ms, done median %.1f ms, whole run median %.1f ms\n", machine, median(first),
                    median(done), median(elapsed));
        RecordProperty(std::string("tcg_") + machine + "_done_ms_median", std::to_string(median(done)));
        // Issue 4's figure (builtin guest median <= 1 s from command start
        // under TCG) is printed, not asserted: speed is the benchmarks' business.
    }
}

}  // namespace
