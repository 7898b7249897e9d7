// The write side's target (host/target.hpp): a rooted target keeps every
// change under its root and never follows a symlink there; a recording
// target runs the real fix ops end to end and changes nothing, writing
// down what they would have done.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "fixes/fix.hpp"
#include "host/target.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using kvmready::testsupport::TempDir;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Target, RootedTargetWritesUnderItsRootAndRefusesSymlinks) {
    TempDir root, outside;
    auto t = kvmready::host::make_target(root.path.string());
    EXPECT_EQ(t->root(), root.path.string());
    t->write_file("/etc/kvmready/a.conf", "a=1\n", {0640, static_cast<uint32_t>(::geteuid()), static_cast<uint32_t>(::getegid())}, ".a.tmp");
    EXPECT_EQ(slurp(root.path / "etc/kvmready/a.conf"), "a=1\n");
    struct stat st {};
    ASSERT_EQ(::stat((root.path / "etc/kvmready/a.conf").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(t->read_file("/etc/kvmready/a.conf"), std::optional<std::string>("a=1\n"));
    EXPECT_TRUE(t->exists("/etc/kvmready"));
    EXPECT_EQ(t->read_file("/etc/absent"), std::nullopt);

    // A symlink on the way out of the root: the write fails, nothing lands outside.
    fs::create_directory_symlink(outside.path, root.path / "link");
    EXPECT_THROW(t->write_file("/link/b.conf", "b\n", {0644, 0, 0}, ".b.tmp"), std::runtime_error);
    EXPECT_FALSE(fs::exists(outside.path / "b.conf"));

    t->remove_file("/etc/kvmready/a.conf");
    EXPECT_FALSE(fs::exists(root.path / "etc/kvmready/a.conf"));
    EXPECT_EQ(t->remove_empty_dir("/etc/kvmready"), 0);
    EXPECT_FALSE(fs::exists(root.path / "etc/kvmready"));
}

TEST(Target, RecordingTargetRunsRealOpsAndChangesNothing) {
    namespace fix = kvmready::fix;
    TempDir root, run;
    fs::create_directories(root.path / "proc/sys/vm");
    std::ofstream(root.path / "proc/sys/vm/nr_hugepages") << "0\n";
    auto rec = std::make_shared<kvmready::host::RecordingTarget>(root.path.string());
    fix::OpContext ctx;
    ctx.root = root.path.string();
    ctx.run_dir = run.path.string();
    ctx.target = rec;
    ctx.log = [](const std::string&) {};

    const auto steps = {fix::write_file("/etc/modprobe.d/kvm.conf", std::nullopt, "options kvm_intel nested=1\n"),
                        fix::proc_write("/proc/sys/vm/nr_hugepages", "0", "reserve no huge pages"),
                        fix::command({"modprobe", "kvm_intel"}, "load kvm_intel")};
    for (const auto& s : steps) {
        const fix::Op* op = fix::find_op(s.op);
        ASSERT_NE(op, nullptr) << s.op;
        auto undo = op->prepare(s, ctx);
        op->apply(s, ctx, undo);
        ++ctx.step_index;
    }
    const std::vector<std::string> want = {"write /etc/modprobe.d/kvm.conf (27 bytes, 0644 0:0)", "set /proc/sys/vm/nr_hugepages = 0",
                                           "run modprobe kvm_intel"};
    EXPECT_EQ(rec->changes(), want);
    EXPECT_FALSE(fs::exists(root.path / "etc/modprobe.d"));
    EXPECT_EQ(slurp(root.path / "proc/sys/vm/nr_hugepages"), "0\n");
}

}  // namespace
