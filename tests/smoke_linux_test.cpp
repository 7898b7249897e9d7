// The Linux smoke guest (`kvmready smoke --guest linux`, ladder stage (d)):
// src/smoke/initramfs.cpp builds the initramfs around the project's static
// init (src/guest/init/init.c), and QEMU boots it directly (no libvirt here:
// that is the smoke command's own test) with Debian's cloud kernel under TCG.
//
//  - SmokeLinuxInitramfs*: the archive itself, read back with libarchive (an
//    independent newc reader): members, modes, device node, module order,
//    decompressed .ko.xz/.ko.zst, built-in and missing modules.
//  - SmokeLinuxBoot*: real boots with a virtio-blk disk holding a nonce and a
//    virtio-net NIC on QEMU's user network with restrict=on (its DHCP server
//    and the ICMP echo of its gateway 10.0.2.2 are answered inside QEMU;
//    nothing leaves the process). Each asserts the guest's serial report.
//
// Needs qemu-system-x86_64, the guest kernel (scripts/fetch-guest-kernel.sh,
// or KVMREADY_GUEST_KERNEL pointing at a directory laid out like its
// `current`) and the built init (build target kvmready_init, found next to
// the kvmready binary in guest/, or KVMREADY_INIT). Skips with the reason.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/background.hpp"
#include "support/guest_vm.hpp"
#include "support/spawn.hpp"

#include "smoke/initramfs.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using kvmready::smoke::InitramfsOptions;
using kvmready::smoke::InitramfsResult;
using kvmready::smoke::write_initramfs;

// The guest powers itself off within its own watchdog (kvmready.timeout);
// QEMU is killed after this whatever happens.
constexpr auto kQemuTimeout = std::chrono::seconds(25);

std::string env_or(const char* name, const std::string& dflt) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : dflt;
}

std::optional<std::string> which(const std::string& prog) {
    std::stringstream ss(env_or("PATH", "/usr/local/bin:/usr/bin:/bin"));
    std::string dir;
    while (std::getline(ss, dir, ':'))
        if (!dir.empty() && ::access((fs::path(dir) / prog).c_str(), X_OK) == 0) return (fs::path(dir) / prog).string();
    return std::nullopt;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
    ASSERT_TRUE(out.good()) << p;
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

fs::path init_path() {
    std::string e = env_or("KVMREADY_INIT", "");
    if (!e.empty()) return e;
    // ${CMAKE_BINARY_DIR}/guest/kvmready-init, beside ${CMAKE_BINARY_DIR}/kvmready.
    return fs::path(KVMREADY_BINARY).parent_path() / "guest" / "kvmready-init";
}

fs::path kernel_dir() { return kvmready::testsupport::guest_kernel_dir(); }

std::string random_hex(size_t bytes) {
    std::random_device rd;
    std::string s;
    for (size_t i = 0; i < bytes; i++) s += fmt::format("{:02x}", rd() & 0xff);
    return s;
}

// The disk of a smoke run: sector 0 = "KVMREADY-NONCE <hex>\n", then zeros.
void write_disk(const fs::path& p, const std::string& nonce) {
    std::string img(1 << 20, '\0');
    if (!nonce.empty()) {
        std::string head = "KVMREADY-NONCE " + nonce + "\n";
        img.replace(0, head.size(), head);
    }
    spit(p, img);
}

class TempDir {
public:
    TempDir() {
        std::string t = (fs::path(env_or("TMPDIR", "/tmp")) / "kvmready-smoke-linux-XXXXXX").string();
        std::vector<char> b(t.begin(), t.end());
        b.push_back('\0');
        if (::mkdtemp(b.data())) path_ = b.data();
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// ---- archive reading (libarchive, linked into the tests directly) ---------

struct Member {
    mode_t mode = 0;
    dev_t rdev = 0;
    std::string data;
};

// Members of a cpio archive in archive order.
std::vector<std::pair<std::string, Member>> read_cpio(const fs::path& p) {
    std::vector<std::pair<std::string, Member>> out;
    archive* a = archive_read_new();
    archive_read_support_format_cpio(a);
    if (archive_read_open_filename(a, p.c_str(), 1 << 16) != ARCHIVE_OK) {
        ADD_FAILURE() << "libarchive cannot open " << p << ": " << archive_error_string(a);
        archive_read_free(a);
        return out;
    }
    archive_entry* e;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        EXPECT_EQ(archive_format(a), ARCHIVE_FORMAT_CPIO_SVR4_NOCRC) << "not newc";
        Member m;
        m.mode = archive_entry_mode(e);
        m.rdev = archive_entry_rdev(e);
        char buf[1 << 16];
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) m.data.append(buf, static_cast<size_t>(n));
        out.emplace_back(archive_entry_pathname(e), std::move(m));
    }
    EXPECT_EQ(rc, ARCHIVE_EOF) << archive_error_string(a);
    archive_read_free(a);
    return out;
}

const Member* find_member(const std::vector<std::pair<std::string, Member>>& v, const std::string& name) {
    for (const auto& [n, m] : v)
        if (n == name) return &m;
    return nullptr;
}

size_t index_of(const std::vector<std::string>& v, const std::string& s) {
    return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

// A compressed file written with libarchive's raw writer (xz or zstd).
void write_compressed(const fs::path& p, const std::string& data, bool zstd) {
    archive* a = archive_write_new();
    archive_write_set_format_raw(a);
    int rc = zstd ? archive_write_add_filter_zstd(a) : archive_write_add_filter_xz(a);
    ASSERT_EQ(rc, ARCHIVE_OK) << archive_error_string(a);
    ASSERT_EQ(archive_write_open_filename(a, p.c_str()), ARCHIVE_OK) << archive_error_string(a);
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    ASSERT_EQ(archive_write_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
}

// A fake ELF init: the generator only checks the magic.
std::string fake_elf() { return std::string("\x7f" "ELF", 4) + std::string(100, 'x'); }

TEST(SmokeLinuxInitramfs, PacksInitConsoleAndModulesInDependencyOrder) {
    TempDir tmp;
    ASSERT_FALSE(tmp.path().empty());
    fs::path mods = tmp.path() / "lib/modules/9.9.9-test";
    fs::create_directories(mods / "kernel/drivers/virtio");
    fs::create_directories(mods / "kernel/drivers/net");
    fs::create_directories(mods / "kernel/net/core");
    fs::path init = tmp.path() / "init";
    spit(init, fake_elf());
    spit(mods / "kernel/drivers/virtio/virtio_ring.ko", "RING");
    spit(mods / "kernel/drivers/virtio/virtio.ko", "VIRTIO");
    spit(mods / "kernel/drivers/virtio/virtio_pci.ko", "PCI");
    const std::string failover(200000, 'F');  // compressible, bigger than one read buffer
    write_compressed(mods / "kernel/net/core/failover.ko.xz", failover, false);
    write_compressed(mods / "kernel/drivers/net/net_failover.ko.zst", "NETFAILOVER", true);
    spit(mods / "kernel/drivers/net/virtio_net.ko", "NET");
    // depmod's order: each module before what it depends on; a dash in a
    // file name is an underscore in the module name.
    spit(mods / "modules.dep",
         "kernel/drivers/virtio/virtio_ring.ko:\n"
         "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
         "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
         "kernel/net/core/failover.ko.xz:\n"
         "kernel/drivers/net/net_failover.ko.zst: kernel/net/core/failover.ko.xz\n"
         "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko.zst kernel/net/core/failover.ko.xz "
         "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
         "kernel/drivers/unused.ko:\n");
    spit(mods / "modules.builtin", "kernel/drivers/block/virtio_blk.ko\n");

    InitramfsOptions opt;
    opt.init = init;
    opt.modules_dir = mods;
    opt.modules = {"virtio-pci", "virtio_blk", "virtio_net", "virtio_gpu"};
    std::string err;
    fs::path out = tmp.path() / "run" / "initramfs.cpio";
    fs::create_directories(out.parent_path());
    auto res = write_initramfs(out, opt, &err);
    ASSERT_TRUE(res) << err;

    // Dependencies before dependants; virtio_blk is built in, virtio_gpu unknown.
    EXPECT_EQ(res->packed, (std::vector<std::string>{"virtio_ring", "virtio", "virtio_pci", "failover", "net_failover",
                                                     "virtio_net"}));
    EXPECT_EQ(res->builtin, std::vector<std::string>{"virtio_blk"});
    EXPECT_EQ(res->missing, std::vector<std::string>{"virtio_gpu"});
    EXPECT_EQ(res->bytes, fs::file_size(out));
    EXPECT_EQ(fs::status(out).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    // Nothing but the archive in the output directory (no temporary left).
    EXPECT_EQ(std::distance(fs::directory_iterator(out.parent_path()), fs::directory_iterator()), 1);

    auto members = read_cpio(out);
    const Member* m = find_member(members, "init");
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(S_ISREG(m->mode));
    EXPECT_EQ(m->mode & 07777, 0755u);
    EXPECT_EQ(m->data, fake_elf());
    m = find_member(members, "dev/console");
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(S_ISCHR(m->mode));
    EXPECT_EQ(major(m->rdev), 5u);
    EXPECT_EQ(minor(m->rdev), 1u);

    const std::string p = "lib/modules/9.9.9-test/";
    m = find_member(members, p + "kernel/net/core/failover.ko");
    ASSERT_NE(m, nullptr) << "xz module not packed decompressed";
    EXPECT_EQ(m->data, failover);
    m = find_member(members, p + "kernel/drivers/net/net_failover.ko");
    ASSERT_NE(m, nullptr) << "zstd module not packed decompressed";
    EXPECT_EQ(m->data, "NETFAILOVER");
    EXPECT_EQ(find_member(members, p + "kernel/drivers/unused.ko"), nullptr) << "packed a module nobody needs";
    // Every member's parent directory comes before it (the kernel's unpacker
    // does not create directories).
    std::vector<std::string> seen;
    for (const auto& [name, mem] : members) {
        auto slash = name.rfind('/');
        if (slash != std::string::npos) {
            EXPECT_NE(std::find(seen.begin(), seen.end(), name.substr(0, slash)), seen.end()) << name;
        }
        seen.push_back(name);
    }

    m = find_member(members, "modules.list");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->data, "/" + p + "kernel/drivers/virtio/virtio_ring.ko\n/" + p + "kernel/drivers/virtio/virtio.ko\n/" +
                           p + "kernel/drivers/virtio/virtio_pci.ko\n/" + p + "kernel/net/core/failover.ko\n/" + p +
                           "kernel/drivers/net/net_failover.ko\n/" + p + "kernel/drivers/net/virtio_net.ko\n");

    // Same inputs, same bytes (nothing time- or inode-dependent inside).
    fs::path again = tmp.path() / "run" / "again.cpio";
    ASSERT_TRUE(write_initramfs(again, opt, &err)) << err;
    EXPECT_EQ(slurp(out), slurp(again));
}

TEST(SmokeLinuxInitramfs, BuiltInDriversYieldNoModules) {
    TempDir tmp;
    fs::path init = tmp.path() / "init";
    spit(init, fake_elf());
    fs::path mods = tmp.path() / "lib/modules/9.9.9-builtin";
    fs::create_directories(mods);
    spit(mods / "modules.dep", "");
    spit(mods / "modules.builtin",
         "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/block/virtio_blk.ko\nkernel/drivers/net/virtio_net.ko\n");
    InitramfsOptions opt;
    opt.init = init;
    opt.modules_dir = mods;
    std::string err;
    auto res = write_initramfs(tmp.path() / "i.cpio", opt, &err);
    ASSERT_TRUE(res) << err;
    EXPECT_TRUE(res->packed.empty());
    EXPECT_EQ(res->builtin, kvmready::smoke::linux_guest_modules());
    auto members = read_cpio(tmp.path() / "i.cpio");
    EXPECT_EQ(find_member(members, "modules.list"), nullptr);
    EXPECT_NE(find_member(members, "init"), nullptr);

    // modules_dir_for finds /lib/modules/REL or /usr/lib/modules/REL under a root.
    EXPECT_EQ(kvmready::smoke::modules_dir_for("9.9.9-builtin", tmp.path()), mods);
    fs::create_directories(tmp.path() / "usr/lib/modules/1.0-usr");
    EXPECT_EQ(kvmready::smoke::modules_dir_for("1.0-usr", tmp.path()), tmp.path() / "usr/lib/modules/1.0-usr");
    EXPECT_TRUE(kvmready::smoke::modules_dir_for("nope", tmp.path()).empty());
    EXPECT_TRUE(kvmready::smoke::modules_dir_for("../x", tmp.path()).empty());
}

TEST(SmokeLinuxInitramfs, ErrorsNameTheProblemAndLeaveNothing) {
    TempDir tmp;
    fs::path init = tmp.path() / "init";
    spit(init, "#!/bin/sh\n");
    fs::path mods = tmp.path() / "mods";
    fs::create_directories(mods);
    spit(mods / "modules.dep", "virtio_net.ko: net_failover.ko\n");  // dependency without an entry
    spit(mods / "virtio_net.ko", "NET");
    fs::path out = tmp.path() / "out" / "i.cpio";
    fs::create_directories(out.parent_path());
    InitramfsOptions opt;
    opt.init = init;
    std::string err;
    EXPECT_FALSE(write_initramfs(out, opt, &err));
    EXPECT_NE(err.find("not an ELF"), std::string::npos) << err;

    spit(init, fake_elf());
    opt.modules_dir = mods;
    opt.modules = {"virtio_net"};
    EXPECT_FALSE(write_initramfs(out, opt, &err));
    EXPECT_NE(err.find("net_failover"), std::string::npos) << err;

    opt.init = tmp.path() / "missing-init";
    EXPECT_FALSE(write_initramfs(out, opt, &err));
    EXPECT_NE(err.find("missing-init"), std::string::npos) << err;
    EXPECT_TRUE(fs::is_empty(out.parent_path())) << "a failed write left files behind";
}

TEST(SmokeLinuxInitramfs, RealDebianKernelModulesInLoadableOrder) {
    fs::path k = kernel_dir();
    std::string rel = trim(slurp(k / "release"));
    if (rel.empty() || !fs::exists(k / "lib/modules" / rel / "modules.dep"))
        GTEST_SKIP() << "guest kernel not found in " << k << " (scripts/fetch-guest-kernel.sh)";
    TempDir tmp;
    spit(tmp.path() / "init", fake_elf());
    InitramfsOptions opt;
    opt.init = tmp.path() / "init";
    opt.modules_dir = kvmready::smoke::modules_dir_for(rel, k);
    ASSERT_FALSE(opt.modules_dir.empty());
    std::string err;
    auto res = write_initramfs(tmp.path() / "i.cpio", opt, &err);
    ASSERT_TRUE(res) << err;
    EXPECT_TRUE(res->missing.empty());
    const auto& p = res->packed;
    // The chains the issue names: virtio_pci and its dependencies, virtio_blk,
    // failover -> net_failover -> virtio_net.
    for (const char* m : {"virtio_ring", "virtio", "virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net"})
        ASSERT_LT(index_of(p, m), p.size()) << m << " not packed";
    EXPECT_LT(index_of(p, "virtio_ring"), index_of(p, "virtio"));
    EXPECT_LT(index_of(p, "virtio"), index_of(p, "virtio_pci"));
    EXPECT_LT(index_of(p, "virtio"), index_of(p, "virtio_blk"));
    EXPECT_LT(index_of(p, "failover"), index_of(p, "net_failover"));
    EXPECT_LT(index_of(p, "net_failover"), index_of(p, "virtio_net"));
    // The release read from the image itself finds the same modules.
    std::string kerr;
    auto from_image = kvmready::smoke::kernel_release(k / "vmlinuz", &kerr);
    ASSERT_TRUE(from_image) << kerr;
    EXPECT_EQ(*from_image, rel);
    EXPECT_FALSE(kvmready::smoke::kernel_release(k / "release", &kerr)) << "a text file is not a kernel";
    EXPECT_NE(kerr.find("not an x86 Linux kernel"), std::string::npos) << kerr;
    std::cout << "[ initramfs ] " << rel << ": " << p.size() << " modules, " << res->bytes << " bytes" << std::endl;
}

// ---- boots -------------------------------------------------------------------

using ProcResult = kvmready::testsupport::Logged;

ProcResult run(const std::vector<std::string>& argv, const fs::path& log, std::chrono::seconds timeout) {
    return kvmready::testsupport::run_logged(argv, log, timeout);
}

using kvmready::testsupport::Background;  // a process left running (dnsmasq), killed by its PID

struct Stage {
    std::string name, result;
    std::map<std::string, std::string> kv;
};

struct Boot {
    std::vector<Stage> stages;  // protocol lines in order
    std::string serial, qemu_log;
    ProcResult proc;

    const Stage* stage(const std::string& n) const {
        for (const auto& s : stages)
            if (s.name == n) return &s;
        return nullptr;
    }
    std::string names() const {
        std::string o;
        for (const auto& s : stages) o += s.name + "=" + s.result + " ";
        return o;
    }
};

// Protocol lines start a line: "KVMREADY <stage> <ok|fail> [k=v ...]".
std::vector<Stage> parse_serial(const std::string& text) {
    std::vector<Stage> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        line.erase(std::remove(line.begin(), line.end(), '\r'), line.end());
        if (line.rfind("KVMREADY ", 0) != 0) continue;
        std::istringstream w(line.substr(9));
        Stage s;
        w >> s.name >> s.result;
        std::string kv;
        while (w >> kv) {
            auto eq = kv.find('=');
            if (eq != std::string::npos) s.kv[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        out.push_back(std::move(s));
    }
    return out;
}

class SmokeLinuxBoot : public ::testing::Test {
protected:
    fs::path qemu_, vmlinuz_, modules_dir_, init_;
    std::unique_ptr<TempDir> tmp_;
    Boot last_;

    void SetUp() override {
        auto q = which("qemu-system-x86_64");
        if (!q) GTEST_SKIP() << "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
        qemu_ = *q;
        fs::path k = kernel_dir();
        vmlinuz_ = k / "vmlinuz";
        std::string rel = trim(slurp(k / "release"));
        if (rel.empty() || !fs::exists(vmlinuz_))
            GTEST_SKIP() << "guest kernel not found in " << k << "; fetch it with scripts/fetch-guest-kernel.sh";
        modules_dir_ = kvmready::smoke::modules_dir_for(rel, k);
        init_ = init_path();
        if (!fs::exists(init_))
            GTEST_SKIP() << init_ << " missing: build target kvmready_init (src/guest/init) or set KVMREADY_INIT";
        tmp_ = std::make_unique<TempDir>();
        ASSERT_FALSE(tmp_->path().empty());
    }

    void TearDown() override {
        if (HasFailure() && !last_.serial.empty())
            std::cerr << "---- serial ----\n" << last_.serial << "\n---- qemu ----\n" << last_.qemu_log << "\n";
        tmp_.reset();
    }

    fs::path initramfs(const fs::path& modules_dir) {
        InitramfsOptions opt;
        opt.init = init_;
        opt.modules_dir = modules_dir;
        std::string err;
        fs::path out = tmp_->path() / "initramfs.cpio";
        auto r = write_initramfs(out, opt, &err);
        EXPECT_TRUE(r) << err;
        return out;
    }

    // One boot; `disk_nonce` empty = a disk without a nonce sector; `netns`:
    // QEMU runs in that network namespace with its NIC on tap0 there.
    Boot boot(const fs::path& initrd, const std::string& disk_nonce, bool nic, const std::string& extra_append = "",
              const std::string& mac = "52:54:00:12:34:56", const std::string& netns = "") {
        fs::path disk = tmp_->path() / "disk.img";
        write_disk(disk, disk_nonce);
        fs::path serial = tmp_->path() / "serial.log", qlog = tmp_->path() / "qemu.log";
        fs::remove(serial);
        fs::remove(qlog);
        std::vector<std::string> argv;
        if (!netns.empty()) argv = {"/usr/sbin/ip", "netns", "exec", netns};
        for (const std::string& a : std::vector<std::string>{
                 qemu_.string(), "-accel", "tcg", "-M", "pc", "-m", "256", "-nographic", "-nodefaults", "-no-reboot",
                 "-monitor", "none", "-serial", "file:" + serial.string(), "-kernel", vmlinuz_.string(), "-initrd",
                 initrd.string(), "-append", "console=ttyS0 panic=-1 quiet kvmready.timeout=20" + extra_append,
                 "-drive", "file=" + disk.string() + ",format=raw,if=virtio"})
            argv.push_back(a);
        if (nic) {
            // romfile= : no iPXE option ROM, which only slows the firmware down.
            std::string backend = netns.empty() ? "user,id=n0,restrict=on" : "tap,id=n0,ifname=tap0,script=no,downscript=no";
            for (const std::string& a :
                 {std::string("-netdev"), backend, std::string("-device"), "virtio-net-pci,netdev=n0,romfile=,mac=" + mac})
                argv.push_back(a);
        }
        Boot b;
        b.proc = run(argv, qlog, kQemuTimeout);
        b.serial = slurp(serial);
        b.qemu_log = slurp(qlog) + b.proc.spawn_error;
        b.stages = parse_serial(b.serial);
        last_ = b;
        EXPECT_FALSE(b.proc.timed_out) << "QEMU killed after " << kQemuTimeout.count() << " s";
        EXPECT_EQ(b.proc.exit_code, 0) << "QEMU exit (the guest powers off: exit 0)";
        return b;
    }

    // A virtio NIC with no QEMU network behind it (frames go nowhere).
    Boot boot_unplugged_nic(const std::string& extra_append) {
        fs::path initrd = initramfs(modules_dir_);
        fs::path disk = tmp_->path() / "disk.img";
        write_disk(disk, random_hex(32));
        fs::path serial = tmp_->path() / "serial.log", qlog = tmp_->path() / "qemu.log";
        std::vector<std::string> argv = {
            qemu_.string(), "-accel", "tcg", "-M", "pc", "-m", "256", "-nographic", "-nodefaults", "-no-reboot",
            "-monitor", "none", "-serial", "file:" + serial.string(), "-kernel", vmlinuz_.string(), "-initrd",
            initrd.string(), "-append", "console=ttyS0 panic=-1 quiet kvmready.timeout=20" + extra_append, "-drive",
            "file=" + disk.string() + ",format=raw,if=virtio", "-device", "virtio-net-pci,romfile="};
        Boot b;
        b.proc = run(argv, qlog, kQemuTimeout);
        b.serial = slurp(serial);
        b.qemu_log = slurp(qlog);
        b.stages = parse_serial(b.serial);
        last_ = b;
        return b;
    }

    // The stages a passing run reports, in protocol order, nothing failed.
    void expect_all_ok(const Boot& b, const std::string& nonce, const std::string& mac) {
        std::vector<std::string> order;
        for (const auto& s : b.stages) {
            order.push_back(s.name);
            EXPECT_EQ(s.result, "ok") << s.name << " failed: " << b.names();
        }
        EXPECT_EQ(order, (std::vector<std::string>{"boot", "cpu", "disk", "nic", "net", "done"})) << b.names();
        const Stage* s = b.stage("boot");
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->kv.count("entry") ? s->kv.at("entry") : "", "linux");
        s = b.stage("cpu");
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->kv.count("hypervisor") ? s->kv.at("hypervisor") : "", "TCGTCGTCGTCG");
        s = b.stage("disk");
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->kv.count("nonce") ? s->kv.at("nonce") : "", nonce);
        s = b.stage("nic");
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->kv.count("mac") ? s->kv.at("mac") : "", mac);
    }

    const Stage& net(const Boot& b) {
        static const Stage none;
        const Stage* s = b.stage("net");
        return s ? *s : none;
    }
};

std::string val(const Stage& s, const char* k) { return s.kv.count(k) ? s.kv.at(k) : "<none>"; }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

TEST_F(SmokeLinuxBoot, AllStagesPassWithDhcpThreeTimes) {
    fs::path initrd = initramfs(modules_dir_);
    std::vector<double> wall, guest_done, guest_boot;
    for (int i = 0; i < 3; i++) {
        std::string nonce = random_hex(32);
        std::string mac = fmt::format("52:54:00:{}:{}:{}", random_hex(1), random_hex(1), random_hex(1));
        Boot b = boot(initrd, nonce, true, "", mac);
        expect_all_ok(b, nonce, mac);
        const Stage& n = net(b);
        EXPECT_EQ(n.result, "ok") << b.names();
        EXPECT_EQ(val(n, "ip"), "10.0.2.15");  // QEMU's user network hands out 10.0.2.15 first
        EXPECT_EQ(val(n, "gw"), "10.0.2.2");
        EXPECT_EQ(val(n, "mode"), "dhcp");
        EXPECT_TRUE(std::regex_match(val(n, "rtt_ms"), std::regex(R"(\d+)"))) << val(n, "rtt_ms");
        if (HasFailure()) return;
        wall.push_back(b.proc.seconds * 1000);
        guest_done.push_back(std::stod(val(*b.stage("done"), "t_ms")));
        guest_boot.push_back(std::stod(val(*b.stage("boot"), "t_ms")));
    }
    std::cout << fmt::format(
                     "[ timing   ] Linux guest under TCG, median of 3: QEMU start to exit {:.0f} ms; guest clock: "
                     "init starts at {:.0f} ms, done at {:.0f} ms (runs: {:.0f} {:.0f} {:.0f} ms)",
                     median(wall), median(guest_boot), median(guest_done), wall[0], wall[1], wall[2])
              << std::endl;
}

TEST_F(SmokeLinuxBoot, StaticAddressFromKernelCommandLine) {
    std::string nonce = random_hex(32);
    Boot b = boot(initramfs(modules_dir_), nonce, true, " kvmready.ip=10.0.2.77/24 kvmready.gw=10.0.2.2");
    expect_all_ok(b, nonce, "52:54:00:12:34:56");
    const Stage& n = net(b);
    EXPECT_EQ(val(n, "ip"), "10.0.2.77");
    EXPECT_EQ(val(n, "gw"), "10.0.2.2");
    EXPECT_EQ(val(n, "mode"), "static");
}

TEST_F(SmokeLinuxBoot, WrongNonceGivesDiskFail) {
    // The host expects one nonce, the disk holds another.
    std::string on_disk = random_hex(32), expected = random_hex(32);
    Boot b = boot(initramfs(modules_dir_), on_disk, true, " kvmready.nonce=" + expected);
    const Stage* d = b.stage("disk");
    ASSERT_NE(d, nullptr) << b.names();
    EXPECT_EQ(d->result, "fail");
    EXPECT_EQ(val(*d, "reason"), "nonce_mismatch");
    EXPECT_EQ(val(*d, "nonce"), on_disk) << "the guest reports what it read";
    EXPECT_EQ(b.stages.back().name, "disk") << "the guest stops at its first failure: " << b.names();
    EXPECT_EQ(b.stage("done"), nullptr);
}

TEST_F(SmokeLinuxBoot, DiskWithoutNonceGivesDiskFail) {
    Boot b = boot(initramfs(modules_dir_), "", true);
    const Stage* d = b.stage("disk");
    ASSERT_NE(d, nullptr) << b.names();
    EXPECT_EQ(d->result, "fail");
    EXPECT_EQ(val(*d, "reason"), "no_nonce");
    EXPECT_EQ(b.stage("done"), nullptr);
}

TEST_F(SmokeLinuxBoot, NoNicGivesNicFail) {
    std::string nonce = random_hex(32);
    Boot b = boot(initramfs(modules_dir_), nonce, false);
    const Stage* d = b.stage("disk");
    ASSERT_NE(d, nullptr) << b.names();
    EXPECT_EQ(d->result, "ok");
    EXPECT_EQ(val(*d, "nonce"), nonce);
    const Stage* n = b.stage("nic");
    ASSERT_NE(n, nullptr) << b.names();
    EXPECT_EQ(n->result, "fail");
    EXPECT_EQ(val(*n, "reason"), "no_virtio_nic");
    EXPECT_EQ(b.stage("net"), nullptr);
    EXPECT_EQ(b.stage("done"), nullptr);
}

TEST_F(SmokeLinuxBoot, WithoutTheModulesTheDiskHasNoDriver) {
    // The Debian kernel has virtio as modules only: an initramfs without them
    // must make the guest say the device is there but undriven, not hang,
    // and leave the kernel's last words in the serial log.
    Boot b = boot(initramfs({}), random_hex(32), true);
    const Stage* d = b.stage("disk");
    ASSERT_NE(d, nullptr) << b.names();
    EXPECT_EQ(d->result, "fail");
    EXPECT_EQ(val(*d, "reason"), "no_driver");
    EXPECT_NE(b.serial.find("kvmready-init: klog: "), std::string::npos) << "no kernel log tail after the failure";
}

TEST_F(SmokeLinuxBoot, NicWithoutNetworkGivesNetFail) {
    // A virtio NIC whose QEMU side is connected to nothing: the device is
    // there, DHCP gets no answer, and the guest says so within its retries.
    Boot b = boot_unplugged_nic("");
    ASSERT_FALSE(b.proc.timed_out);
    const Stage* n = b.stage("nic");
    ASSERT_NE(n, nullptr) << b.names();
    EXPECT_EQ(n->result, "ok");
    const Stage* net = b.stage("net");
    ASSERT_NE(net, nullptr) << b.names();
    EXPECT_EQ(net->result, "fail");
    EXPECT_EQ(val(*net, "reason"), "dhcp_timeout");
    EXPECT_EQ(b.stage("done"), nullptr);
}

TEST_F(SmokeLinuxBoot, WatchdogEndsAStuckStage) {
    // The same DHCP wait cut short by the guest's own watchdog (the last
    // kvmready.timeout on the command line wins): the stage it was in fails
    // with guest_timeout and the guest powers off, long before QEMU's kill.
    Boot b = boot_unplugged_nic(" kvmready.timeout=3");
    ASSERT_FALSE(b.proc.timed_out);
    const Stage* net = b.stage("net");
    ASSERT_NE(net, nullptr) << b.names();
    EXPECT_EQ(net->result, "fail");
    EXPECT_EQ(val(*net, "reason"), "guest_timeout");
    EXPECT_EQ(b.stages.back().name, "net") << b.names();
    EXPECT_LT(b.proc.seconds, 15.0);
}

TEST_F(SmokeLinuxBoot, CompressedModulesAreLoadable) {
    // The same modules shipped as .ko.xz and .ko.zst (as newer Debian and
    // Fedora kernels do): the guest must still reach `done`.
    std::string dep = slurp(modules_dir_ / "modules.dep");
    ASSERT_FALSE(dep.empty());
    InitramfsOptions probe;
    probe.init = init_;
    probe.modules_dir = modules_dir_;
    std::string err;
    auto plain = write_initramfs(tmp_->path() / "plain.cpio", probe, &err);
    ASSERT_TRUE(plain) << err;
    fs::path mods = tmp_->path() / "lib/modules/compressed";
    std::istringstream in(dep);
    std::string line, new_dep;
    int k = 0;
    auto compressed_name = [](const std::string& path, bool zstd) { return path + (zstd ? ".zst" : ".xz"); };
    std::map<std::string, bool> zstd_of;  // path -> compressed with zstd
    std::vector<std::pair<std::string, std::vector<std::string>>> wanted;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string path = line.substr(0, colon);
        std::string name = fs::path(path).stem().string();
        std::replace(name.begin(), name.end(), '-', '_');
        if (index_of(plain->packed, name) == plain->packed.size()) continue;
        zstd_of[path] = (k++ % 2) == 1;
        std::istringstream deps(line.substr(colon + 1));
        std::vector<std::string> d;
        std::string t;
        while (deps >> t) d.push_back(t);
        wanted.emplace_back(path, d);
    }
    for (const auto& [path, deps] : wanted) {
        fs::create_directories((mods / path).parent_path());
        write_compressed(mods / compressed_name(path, zstd_of[path]), slurp(modules_dir_ / path), zstd_of[path]);
        new_dep += compressed_name(path, zstd_of[path]) + ":";
        for (const auto& d : deps) new_dep += " " + compressed_name(d, zstd_of[d]);
        new_dep += "\n";
    }
    spit(mods / "modules.dep", new_dep);
    InitramfsOptions opt;
    opt.init = init_;
    opt.modules_dir = mods;
    auto res = write_initramfs(tmp_->path() / "initramfs.cpio", opt, &err);
    ASSERT_TRUE(res) << err;
    EXPECT_EQ(res->packed, plain->packed);
    std::string nonce = random_hex(32);
    Boot b = boot(tmp_->path() / "initramfs.cpio", nonce, true);
    expect_all_ok(b, nonce, "52:54:00:12:34:56");
    EXPECT_EQ(net(b).result, "ok") << b.names();
}

// A network namespace the test owns, deleted (with its bridge and tap) by
// name when the guard goes.
class NetNs {
public:
    explicit NetNs(std::string name) : name_(std::move(name)) {}
    ~NetNs() {
        if (created_) ip({"netns", "del", name_});
    }
    bool create(const fs::path& log) {
        log_ = log;
        created_ = ip({"netns", "add", name_});
        return created_;
    }
    bool ip(std::vector<std::string> args) {
        args.insert(args.begin(), "/usr/sbin/ip");
        ProcResult r = run(args, log_.empty() ? fs::path("/dev/null") : log_, std::chrono::seconds(10));
        return r.exit_code == 0 && !r.timed_out;
    }
    const std::string& name() const { return name_; }

private:
    std::string name_;
    fs::path log_;
    bool created_ = false;
};

TEST_F(SmokeLinuxBoot, RealDnsmasqAndHostStackInANetworkNamespace) {
    // What libvirt's NAT network gives a guest, without libvirt: dnsmasq
    // serving DHCP on a bridge, and the Linux stack of the bridge's address
    // answering the ping. All of it inside a namespace this test creates.
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
    auto dnsmasq = which("dnsmasq");
    if (!dnsmasq && fs::exists("/usr/sbin/dnsmasq")) dnsmasq = "/usr/sbin/dnsmasq";
    if (!dnsmasq) GTEST_SKIP() << "dnsmasq is not installed (apt-get install dnsmasq-base)";
    if (!fs::exists("/usr/sbin/ip")) GTEST_SKIP() << "iproute2 is not installed";
    fs::path log = tmp_->path() / "setup.log";
    NetNs ns(fmt::format("kvmready-smokelinux-{}", ::getpid()));
    ASSERT_TRUE(ns.create(log)) << slurp(log);
    const std::string n = ns.name();
    ASSERT_TRUE(ns.ip({"-n", n, "link", "set", "lo", "up"})) << slurp(log);
    ASSERT_TRUE(ns.ip({"-n", n, "link", "add", "br0", "type", "bridge"})) << slurp(log);
    ASSERT_TRUE(ns.ip({"-n", n, "addr", "add", "192.168.213.1/24", "dev", "br0"})) << slurp(log);
    ASSERT_TRUE(ns.ip({"-n", n, "link", "set", "br0", "up"})) << slurp(log);
    ASSERT_TRUE(ns.ip({"-n", n, "tuntap", "add", "dev", "tap0", "mode", "tap"})) << slurp(log);
    ASSERT_TRUE(ns.ip({"-n", n, "link", "set", "tap0", "master", "br0", "up"})) << slurp(log);

    fs::path dlog = tmp_->path() / "dnsmasq.log";
    // dhcp-authoritative and dhcp-no-override as in libvirt's own dnsmasq.conf.
    Background dns({"/usr/sbin/ip", "netns", "exec", n, *dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
                    "--no-resolv", "--no-hosts", "--port=0", "--user=root", "--interface=br0", "--bind-interfaces",
                    "--except-interface=lo", "--dhcp-authoritative", "--dhcp-no-override",
                    "--dhcp-range=192.168.213.10,192.168.213.20,255.255.255.0,1h",
                    "--dhcp-leasefile=" + (tmp_->path() / "leases").string(), "--pid-file=", "--log-dhcp",
                    "--log-facility=-"},
                   dlog);
    // dnsmasq logs its DHCP range once its sockets are bound: ready to serve.
    const auto dns_t0 = std::chrono::steady_clock::now();
    while (dns.running() && slurp(dlog).find("DHCP, IP range") == std::string::npos &&
           std::chrono::steady_clock::now() - dns_t0 < std::chrono::seconds(30))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(dns.running()) << "dnsmasq exited:\n" << slurp(dlog);
    ASSERT_NE(slurp(dlog).find("DHCP, IP range"), std::string::npos) << "dnsmasq never said it serves DHCP:\n" << slurp(dlog);

    fs::path initrd = initramfs(modules_dir_);
    auto dhcp_ms = [](const Boot& b) {
        return std::stol(val(*b.stage("net"), "t_ms")) - std::stol(val(*b.stage("nic"), "t_ms"));
    };

    // Plain DHCP: DISCOVER, OFFER (after dnsmasq's 3 s ping check), REQUEST, ACK.
    std::string nonce = random_hex(32);
    Boot b = boot(initrd, nonce, true, "", "52:54:00:12:34:56", n);
    expect_all_ok(b, nonce, "52:54:00:12:34:56");
    const Stage& d = net(b);
    EXPECT_TRUE(std::regex_match(val(d, "ip"), std::regex(R"(192\.168\.213\.(1\d|20))"))) << val(d, "ip");
    EXPECT_EQ(val(d, "gw"), "192.168.213.1");
    EXPECT_EQ(val(d, "mode"), "dhcp");
    // dnsmasq itself saw the exchange and leased that address to that MAC.
    std::string leases = slurp(tmp_->path() / "leases");
    EXPECT_NE(leases.find("52:54:00:12:34:56 " + val(d, "ip")), std::string::npos) << leases << slurp(dlog);
    long discover_ms = HasFailure() ? -1 : dhcp_ms(b);

    // With the host's hint of a free address: one REQUEST, one ACK.
    nonce = random_hex(32);
    b = boot(initrd, nonce, true, " kvmready.dhcp_hint=192.168.213.19", "52:54:00:12:34:58", n);
    expect_all_ok(b, nonce, "52:54:00:12:34:58");
    EXPECT_EQ(val(net(b), "ip"), "192.168.213.19");
    EXPECT_EQ(val(net(b), "gw"), "192.168.213.1");
    std::string dl = slurp(dlog);
    EXPECT_NE(dl.find("DHCPACK(br0) 192.168.213.19 52:54:00:12:34:58"), std::string::npos) << dl;
    EXPECT_EQ(dl.find("DHCPDISCOVER(br0) 192.168.213.19 52:54:00:12:34:58"), std::string::npos)
        << "the hinted request should not need a DISCOVER:\n" << dl;
    if (!HasFailure())
        std::cout << fmt::format("[ timing   ] dnsmasq: NIC found to ping answered: {} ms with DISCOVER, {} ms with "
                                 "a hinted REQUEST (guest clock)",
                                 discover_ms, dhcp_ms(b))
                  << std::endl;

    // A bridge without DHCP: the static address from the command line.
    nonce = random_hex(32);
    b = boot(initrd, nonce, true, " kvmready.ip=192.168.213.50/24 kvmready.gw=192.168.213.1", "52:54:00:12:34:57", n);
    expect_all_ok(b, nonce, "52:54:00:12:34:57");
    EXPECT_EQ(val(net(b), "ip"), "192.168.213.50");
    EXPECT_EQ(val(net(b), "mode"), "static");
}

}  // namespace
