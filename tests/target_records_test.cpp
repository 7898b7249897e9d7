// Smoke and bundles change the system through the Target as the fixes do:
// the bundle writer, smoke step (b)'s run directory, disk and QEMU, and the
// Linux guest's initramfs run for real against a RecordingTarget, which
// writes down what they would have done and changes nothing; so does reading
// a bundle back (its unpacking). Each test fails
// when the code under it goes around the target (then the change happens,
// or fails, for real and nothing is recorded).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "host/target.hpp"
#include "report/bundle.hpp"
#include "smoke/initramfs.hpp"
#include "smoke/qemu_direct.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using kvmready::host::RecordingTarget;
using kvmready::testsupport::TempDir;

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
    return out;
}

kvmready::report::BundleContents sample_bundle(const fs::path& tree) {
    fs::create_directories(tree / "proc/sys/vm");
    std::ofstream(tree / "proc/sys/vm/nr_hugepages") << "7\n";
    kvmready::report::BundleContents c;
    c.tree_dir = tree.string();
    c.extra_files = {{"facts.json", "{\"a\":1}\n"}};
    c.manifest["format"] = kvmready::report::kBundleFormat;
    c.redact = false;
    return c;
}

TEST(TargetRecords, BundleWriterWritesThroughTheTarget) {
    TempDir tree, out_dir;
    const std::string out = (out_dir.path / "b.tar.gz").string();
    RecordingTarget rec;
    uint64_t bytes = 0;
    try {
        bytes = kvmready::report::write_bundle(sample_bundle(tree.path), out, false, rec);
    } catch (const kvmready::ExitError& e) {
        if (e.code == kvmready::kExitUnavailable) GTEST_SKIP() << e.what();
        throw;
    }
    // One change, the whole archive, and nothing on disk: no temp file, no bundle.
    ASSERT_EQ(rec.changes(), std::vector<std::string>{fmt::format("write {} ({} bytes)", out, bytes)});
    EXPECT_TRUE(fs::is_empty(out_dir.path));
    const std::string& archive = rec.written().at(out);
    ASSERT_EQ(archive.size(), bytes);
    ASSERT_GT(archive.size(), 2u);
    EXPECT_EQ(archive.substr(0, 2), std::string("\x1f\x8b"));  // gzip

    // The recorded bytes are the bundle: it opens, with the tree and files in it.
    std::ofstream(out, std::ios::binary) << archive;
    const auto opened = kvmready::report::open_bundle(out);
    std::ifstream v(fs::path(opened->host_tree()) / "proc/sys/vm/nr_hugepages");
    std::string line;
    std::getline(v, line);
    EXPECT_EQ(line, "7");
    EXPECT_EQ(opened->manifest().value("format", ""), kvmready::report::kBundleFormat);
    EXPECT_EQ(opened->manifest().value("redacted", true), false);
}

TEST(TargetRecords, BundleWriterAsksTheTargetWhetherTheFileExists) {
    TempDir tree, out_dir;
    const std::string out = (out_dir.path / "b.tar.gz").string();
    std::ofstream(out) << "mine\n";
    RecordingTarget rec;
    try {
        kvmready::report::write_bundle(sample_bundle(tree.path), out, false, rec);
        ADD_FAILURE() << "an existing bundle was replaced without force";
    } catch (const kvmready::ExitError& e) {
        EXPECT_EQ(e.code, kvmready::kExitUsage) << e.what();
    }
    EXPECT_TRUE(rec.changes().empty());
}

// Reading a bundle unpacks it through the target too: the private temp dir,
// each directory and member, and the removal. Nothing is unpacked for real,
// so the bundle then has no manifest to read (65), and $TMPDIR stays empty.
TEST(TargetRecords, BundleIsUnpackedThroughTheTarget) {
    TempDir tree, out_dir, tmp;
    const std::string out = (out_dir.path / "b.tar.gz").string();
    try {
        kvmready::report::write_bundle(sample_bundle(tree.path), out, false);
    } catch (const kvmready::ExitError& e) {
        if (e.code == kvmready::kExitUnavailable) GTEST_SKIP() << e.what();
        throw;
    }
    const char* old_tmpdir = std::getenv("TMPDIR");
    const std::string saved = old_tmpdir ? old_tmpdir : "";
    ::setenv("TMPDIR", tmp.path.c_str(), 1);
    RecordingTarget rec;
    int code = 0;
    try {
        kvmready::report::open_bundle(out, {}, rec);
    } catch (const kvmready::ExitError& e) {
        code = e.code;
    }
    if (old_tmpdir) ::setenv("TMPDIR", saved.c_str(), 1); else ::unsetenv("TMPDIR");
    EXPECT_EQ(code, kvmready::kExitDataErr);
    EXPECT_TRUE(fs::is_empty(tmp.path));
    const auto& ch = rec.changes();
    ASSERT_FALSE(ch.empty());
    const std::string dir = tmp.path.string() + "/kvmready-bundle-recorded";
    EXPECT_EQ(ch.front(), "mkdtemp " + tmp.path.string() + "/kvmready-bundle-XXXXXX");
    EXPECT_EQ(ch.back(), "rmtree " + dir);
    const std::string member = dir + "/" + kvmready::report::kBundleTop + "/host/proc/sys/vm/nr_hugepages";
    EXPECT_NE(std::find(ch.begin(), ch.end(), "new " + member), ch.end()) << join(ch);
    EXPECT_NE(std::find(ch.begin(), ch.end(), "new " + dir + "/" + kvmready::report::kBundleTop + "/manifest.json"), ch.end()) << join(ch);
    EXPECT_EQ(rec.written().at(member), "7\n");
}

// Step (b) up to the point where QEMU would start: the run directory, the
// nonce disk, QEMU's argv, and the run directory's removal.
TEST(TargetRecords, QemuDirectPreparesAndSpawnsThroughTheTarget) {
    TempDir guest_dir;
    const fs::path guest = guest_dir.path / "guest.elf";
    std::ofstream(guest) << "not really an ELF\n";
    const std::string parent = (guest_dir.path / "absent-parent").string();  // never made: a live mkdtemp would fail
    RecordingTarget rec;
    kvmready::smoke::QemuDirectConfig cfg;
    cfg.guest = guest.string();
    cfg.tmp_parent = parent;
    cfg.target = &rec;
    const auto s = kvmready::smoke::run_qemu_direct(cfg);

    EXPECT_FALSE(s.ran);
    EXPECT_EQ(s.failure, "prerequisite") << s.message;
    const std::string dir = parent + "/kvmready-smoke-b-recorded";
    const std::string disk = dir + "/disk.raw";
    ASSERT_TRUE(s.details.contains("argv")) << s.message;
    const auto argv = s.details["argv"].get<std::vector<std::string>>();
    EXPECT_EQ(argv, kvmready::smoke::qemu_direct_argv(cfg, guest.string(), disk, s.details["mac"].get<std::string>()));
    const std::vector<std::string> want = {"mkdtemp " + parent + "/kvmready-smoke-b-XXXXXX", "disk " + disk + " (1048576 bytes)",
                                           "spawn " + join(argv), "rmtree " + dir};
    EXPECT_EQ(rec.changes(), want);
    // Sector 0 holds the nonce the step expects back from the guest.
    const std::string& head = rec.written().at(disk);
    ASSERT_EQ(head.size(), 512u);
    EXPECT_EQ(head.substr(0, head.find('\n') + 1), "KVMREADY-NONCE " + s.details["nonce"].get<std::string>() + "\n");
    EXPECT_FALSE(fs::exists(parent));
}

TEST(TargetRecords, InitramfsIsWrittenThroughTheTarget) {
    TempDir dir;
    const fs::path init = dir.path / "init";
    std::ofstream(init, std::ios::binary) << "\x7f" "ELF, enough for the packer\n";
    RecordingTarget rec;
    kvmready::smoke::InitramfsOptions io;
    io.init = init;
    io.target = &rec;
    std::string error;
    const fs::path out = dir.path / "initramfs.cpio";
    const auto res = kvmready::smoke::write_initramfs(out, io, &error);
    ASSERT_TRUE(res) << error;
    ASSERT_EQ(rec.changes(), std::vector<std::string>{fmt::format("write {} ({} bytes, 0644)", out.string(), res->bytes)});
    EXPECT_EQ(rec.written().at(out.string()).substr(0, 6), "070701");  // newc cpio
    EXPECT_FALSE(fs::exists(out));
}

}  // namespace
