// Reading QEMU's version banner out of its binary instead of running it: the
// result must equal what `--version` prints, and anything that is not a
// plain ELF with the string must say why instead of guessing.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include "support/temp_dir.hpp"

#include "core/facts_virt.hpp"
#include "core/probe.hpp"
#include "host/elf_string.hpp"
#include "host/process.hpp"
#include "host/recording_host.hpp"

using namespace kvmready;
namespace fs = std::filesystem;

namespace {

const char* kQemu = "/usr/bin/qemu-system-x86_64";

using TempDir = kvmready::testsupport::TempDir;

}  // namespace

TEST(ElfString, QemuBannerMatchesItsVersionOutput) {
    if (!fs::exists(kQemu)) GTEST_SKIP() << kQemu << " is not installed";
    const auto r = host::run_process({kQemu, "--version"}, 10000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string first_line = r.out.substr(0, r.out.find('\n'));
    std::string why;
    const auto banner = host::elf_rodata_string(kQemu, "QEMU emulator version ", &why);
    ASSERT_TRUE(banner) << why;
    EXPECT_EQ(banner->substr(0, banner->find('\n')), first_line);
    EXPECT_FALSE(parse_qemu_version(first_line).empty());
}

TEST(ElfString, NonElfMissingStringAndMissingFileSayWhy) {
    TempDir d;
    const fs::path script = d.path / "qemu-wrapper";
    std::ofstream(script) << "#!/bin/sh\necho 'QEMU emulator version 9.9.9'\n";
    std::string why;
    EXPECT_FALSE(host::elf_rodata_string(script.string(), "QEMU emulator version ", &why));
    EXPECT_NE(why.find("not a 64-bit ELF"), std::string::npos) << why;
    // A real ELF without the banner: this test binary's own .rodata has no such string
    // (the needle is assembled at run time so the literal does not land there).
    const std::string needle = std::string("KVMREADY-") + "NO-SUCH-" + "BANNER ";
    EXPECT_FALSE(host::elf_rodata_string("/proc/self/exe", needle, &why));
    EXPECT_NE(why.find("no string starting with"), std::string::npos) << why;
    EXPECT_FALSE(host::elf_rodata_string((d.path / "absent").string(), "x", &why));
    EXPECT_NE(why.find("cannot open"), std::string::npos) << why;
    // Truncated ELF: a valid header whose section table lies past the end.
    const fs::path cut = d.path / "cut";
    {
        std::ifstream in("/proc/self/exe", std::ios::binary);
        std::string head(4096, '\0');
        in.read(head.data(), static_cast<std::streamsize>(head.size()));
        std::ofstream(cut, std::ios::binary) << head;
    }
    EXPECT_FALSE(host::elf_rodata_string(cut.string(), "x", &why));
    EXPECT_NE(why.find("truncated"), std::string::npos) << why;
}

TEST(ElfString, RecordedBannerReplaysWithoutRunningQemu) {
    if (!fs::exists(kQemu)) GTEST_SKIP() << kQemu << " is not installed";
    TempDir d;
    const fs::path tree = d.path / "tree";
    auto live = host::make_live_host();
    host::RecordingHost rec(*live);
    ProbeOptions o;
    o.kvm_api = false;
    o.areas = kAreaVirt;
    o.libvirt_timeout_ms = 500;
    const Facts f = probe(rec, o);
    ASSERT_EQ(f.virt.qemu.path, kQemu);
    if (f.virt.qemu.version_from != "libvirt") EXPECT_EQ(f.virt.qemu.version_from, "binary");
    ASSERT_FALSE(f.virt.qemu.version.empty());
    rec.write(tree.string(), "elf_string_test");
    auto rooted = host::make_rooted_host(tree.string());
    const Facts g = probe(*rooted, o);
    EXPECT_EQ(g.virt.qemu.version, f.virt.qemu.version);
    EXPECT_FALSE(g.virt.qemu.version_ran) << "the replay must not need a recorded `qemu --version`";
}
