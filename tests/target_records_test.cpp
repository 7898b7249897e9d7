// Smoke and bundles change the system through the Target as the fixes do:
// the bundle writer, smoke step (b)'s run directory, disk and QEMU, and the
// Linux guest's initramfs run for real against a RecordingTarget, which
// writes down what they would have done and changes nothing; so does reading
// a bundle back (its unpacking), and so do libvirt's changes: the fixes'
// networks and pools, smoke step (c)'s volume, DHCP reservation and guest,
// through the session the target opens. Each test fails when the code under
// it goes around the target (then the change happens, or fails, for real
// and nothing is recorded; no libvirt daemon runs for these tests).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "fixes/fix.hpp"
#include "fixes/libvirt_fix.hpp"
#include "host/target.hpp"
#include "report/bundle.hpp"
#include "smoke/initramfs.hpp"
#include "smoke/libvirt_run.hpp"
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

#ifdef KVMREADY_HAVE_LIBVIRT

// The planners' own libvirt plans (network default, a directory pool) for a
// daemon that answers and has neither, applied step by step as the engine
// does (prepare, apply), then undone in reverse: every libvirt change is
// recorded with its XML, each step sees the earlier ones (start finds what
// define defined), and undo takes back exactly what apply did.
TEST(TargetRecords, LibvirtFixPlanIsRecordedWithItsXml) {
    namespace fix = kvmready::fix;
    TempDir tmp, run;
    const std::string pool_dir = (tmp.path / "absent/images").string();
    kvmready::Facts facts;
    facts.virt.probed = true;
    auto& l = facts.virt.libvirt;
    l.queried = l.installed = true;
    l.snapshot.attempted = l.snapshot.connected = l.snapshot.read_write = true;
    // What the planners read of the host: no routes or addresses, no virbr0, no pool directory.
    auto& c = facts.config;
    c.probed = true;
    c.files["/proc/net/route"].content = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
    c.files["/proc/net/fib_trie"].content = "";
    c.commands[kvmready::ConfigFacts::command_key({"ip", "-j", "-4", "addr", "show"})] = {true, 1, ""};
    c.types["/sys/class/net/virbr0"] = "";
    c.types[pool_dir] = "";
    kvmready::Report report;
    fix::FixOptions options;
    options.pool_path = pool_dir;
    const fix::PlanInput in{facts, report, options};
    std::vector<fix::Step> steps;
    for (const char* id : {"libvirt.network-default", "storage.pool-default"}) {
        const auto plan = fix::find_fix(id)->plan(in);
        ASSERT_TRUE(plan) << id;
        steps.insert(steps.end(), plan->steps.begin(), plan->steps.end());
    }

    auto rec = std::make_shared<RecordingTarget>();
    fix::OpContext ctx;
    ctx.run_dir = run.path.string();
    ctx.target = rec;
    ctx.log = [](const std::string&) {};
    std::vector<nlohmann::json> undos;
    for (const auto& st : steps) {
        const fix::Op* op = fix::find_op(st.op);
        ASSERT_NE(op, nullptr) << st.op;
        auto u = op->prepare(st, ctx);
        op->apply(st, ctx, u);
        undos.push_back(u);
        ++ctx.step_index;
    }
    const std::vector<std::string> applied = {
        "libvirt define network default", "libvirt start network default", "libvirt autostart network default",
        "libvirt define pool default",    "libvirt build pool default",    "libvirt start pool default",
        "libvirt autostart pool default"};
    ASSERT_EQ(rec->changes(), applied);
    const auto& calls = rec->libvirt_calls();
    ASSERT_EQ(calls.size(), applied.size());
    for (const auto& c : calls) EXPECT_EQ(c.uri, "qemu:///system");
    // The XML defined is the plan's, with the UUID chosen in prepare (undo removes that one).
    EXPECT_EQ(calls[0].kind, "network");
    EXPECT_EQ(calls[0].body, fix::lv::with_uuid(steps[0].args.value("xml", ""), undos[0].value("uuid", "")));
    EXPECT_NE(calls[0].body.find("<forward mode='nat'/>"), std::string::npos) << calls[0].body;
    EXPECT_EQ(calls[3].kind, "pool");
    EXPECT_EQ(calls[3].body, fix::lv::with_uuid(steps[3].args.value("xml", ""), undos[3].value("uuid", "")));
    EXPECT_NE(calls[3].body.find("<path>" + pool_dir + "</path>"), std::string::npos) << calls[3].body;
    ASSERT_EQ(rec->libvirt_objects.size(), 2u);
    for (const auto& o : rec->libvirt_objects) EXPECT_TRUE(o.persistent && o.active && o.autostart) << o.name;

    for (size_t i = steps.size(); i-- > 0;) fix::find_op(steps[i].op)->undo(undos[i], ctx);
    std::vector<std::string> want = applied;
    for (const std::string& c : std::vector<std::string>{"libvirt noautostart pool default", "libvirt stop pool default",
                                                         "rmdir " + pool_dir, "rmdir " + (tmp.path / "absent").string(),
                                                         "libvirt undefine pool default", "libvirt noautostart network default",
                                                         "libvirt stop network default", "libvirt undefine network default"})
        want.push_back(c);
    EXPECT_EQ(rec->changes(), want);
    EXPECT_TRUE(rec->libvirt_objects.empty());
    EXPECT_FALSE(fs::exists(tmp.path / "absent"));
}

// Step (c) against a daemon with an active pool and network: its DHCP
// reservation, the run directory, the volume with the nonce, the transient
// guest (which never runs in a recording, so the step ends with no serial
// output) and the teardown of all of them, in order.
TEST(TargetRecords, SmokeLibvirtRunGoesThroughTheTarget) {
    TempDir tmp;
    const std::string kernel = (tmp.path / "guest.elf").string();
    std::ofstream(kernel) << "not really a kernel\n";
    const std::string parent = (tmp.path / "absent-parent").string();  // never made: a live mkdir would fail
    RecordingTarget rec;
    rec.libvirt_objects.push_back({kvmready::host::LibvirtKind::pool, "default",
                                   "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>",
                                   true, true, true});
    rec.libvirt_objects.push_back({kvmready::host::LibvirtKind::network, "default",
                                   "<network><name>default</name><forward mode='nat'/><ip address='192.168.122.1' "
                                   "netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>"
                                   "</network>",
                                   true, true, true});
    kvmready::smoke::LibvirtRunConfig cfg;
    cfg.accel = "tcg";
    cfg.kernel = kernel;
    cfg.linux_guest = true;
    cfg.run_dir_parent = parent;
    cfg.target = &rec;
    const auto s = kvmready::smoke::run_libvirt(cfg);

    EXPECT_FALSE(s.passed);
    EXPECT_EQ(s.failure, "no_serial_output") << s.message;
    const auto d = [&](const char* key) { return s.details.value(key, std::string()); };
    const std::string name = d("domain"), vol = "default/" + d("volume"), dir = d("run_dir");
    ASSERT_EQ(dir, parent + "/" + name);
    const std::vector<std::string> want = {"libvirt dhcp-add network default",
                                           "mkdir " + dir + " 0711",
                                           "copy " + kernel + " " + dir + "/guest 0644",
                                           "create " + dir + "/serial.log 0644",
                                           "libvirt create volume " + vol,
                                           "libvirt upload volume " + vol + " (512 bytes)",
                                           "libvirt create domain " + name + " (autodestroy)",
                                           "libvirt destroy domain " + name,
                                           "libvirt delete volume " + vol,
                                           "libvirt dhcp-delete network default",
                                           "rmtree " + dir,
                                           "remove /var/log/libvirt/qemu/" + name + ".log"};
    EXPECT_EQ(rec.changes(), want);
    const auto& calls = rec.libvirt_calls();
    ASSERT_EQ(calls.size(), 7u);
    // The reservation is for this run's MAC, at the address the step reports, and goes again.
    const std::string host = fmt::format("<host mac='{}' ip='{}'/>", d("mac"), d("dhcp_reservation"));
    EXPECT_EQ(calls[0].body, host);
    EXPECT_EQ(calls[6].body, host);
    EXPECT_NE(calls[1].body.find("<name>" + d("volume") + "</name>"), std::string::npos) << calls[1].body;
    EXPECT_EQ(d("volume_path"), "/var/lib/libvirt/images/" + d("volume"));
    // Sector 0 holds the nonce the guest is to read back.
    ASSERT_EQ(calls[2].body.size(), 512u);
    EXPECT_EQ(calls[2].body.substr(0, calls[2].body.find('\n') + 1), "KVMREADY-NONCE " + d("nonce") + "\n");
    const std::string& xml = calls[3].body;
    EXPECT_EQ(xml.rfind("<domain type='qemu'><name>" + name + "</name>", 0), 0u) << xml;
    for (const std::string& part : std::vector<std::string>{"<kernel>" + dir + "/guest</kernel>", "<source pool='default' volume='" + d("volume") + "'/>",
                                   "<source network='default'/><mac address='" + d("mac") + "'/>", "<source path='" + dir + "/serial.log'/>"})
        EXPECT_NE(xml.find(part), std::string::npos) << part << " in " << xml;
    EXPECT_FALSE(fs::exists(parent));
}

#endif

}  // namespace
