// The virt area without a daemon: parsers on real libvirt XML (from the
// recorded fixture and this machine's libvirt package), the checks' decisions
// on facts, and the QEMU user's /dev/kvm verdict against a real open(2) by
// that user on real device nodes.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "core/mountinfo.hpp"
#include "core/facts.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"

namespace {

using namespace kvmready;
namespace fs = std::filesystem;

const fs::path kTree = fs::path(KVMREADY_FIXTURES_DIR) / "virt-libvirtd-netns";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

const Finding& find(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return f;
    throw std::runtime_error("no finding " + id);
}

// ---- parsers ----

TEST(VirtParse, DomainCapabilitiesOfTheRecordedDaemon) {
    const std::string xml = slurp(kTree / ".kvmready/libvirt/domcaps-kvm.xml");
    ASSERT_FALSE(xml.empty()) << "fixture missing: " << kTree;
    const DomCapsFacts d = parse_domcaps(xml);
    ASSERT_TRUE(d.present) << d.error;
    EXPECT_EQ(d.domain, "kvm");
    EXPECT_EQ(d.arch, "x86_64");
    EXPECT_EQ(d.path, "/usr/bin/qemu-system-x86_64");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(xml, m, std::regex("<machine>([^<]+)</machine>")));
    EXPECT_EQ(d.machine, m[1].str());
    // Every loader path in the XML, and nothing else.
    std::vector<std::string> loaders;
    const std::regex re("<value>(/[^<]+)</value>");
    for (auto it = std::sregex_iterator(xml.begin(), xml.end(), re); it != std::sregex_iterator(); ++it) loaders.push_back((*it)[1]);
    EXPECT_EQ(d.loaders, loaders);
    EXPECT_FALSE(d.loaders.empty()) << "ovmf is installed on the recording host";
    EXPECT_EQ(d.firmware, std::vector<std::string>{"efi"});
    EXPECT_TRUE(std::find(d.cpu_modes.begin(), d.cpu_modes.end(), "host-passthrough") != d.cpu_modes.end());
    EXPECT_GT(d.max_vcpus, 0);
}

TEST(VirtParse, CapabilitiesListMachineTypesAndDomainTypes) {
    const std::string xml = slurp(kTree / ".kvmready/libvirt/capabilities.xml");
    ASSERT_FALSE(xml.empty());
    std::vector<std::string> machines, types;
    parse_capabilities(xml, "x86_64", machines, types);
    EXPECT_TRUE(std::find(machines.begin(), machines.end(), "pc") != machines.end());
    EXPECT_TRUE(std::find(machines.begin(), machines.end(), "q35") != machines.end());
    EXPECT_TRUE(std::find(types.begin(), types.end(), "qemu") != types.end());
    std::vector<std::string> none, none_types;
    parse_capabilities(xml, "s390x", none, none_types);
    EXPECT_TRUE(none.empty()) << "only the requested architecture";
}

TEST(VirtParse, StockDefaultNetworkAndRecordedPool) {
    const std::string stock = slurp("/usr/share/libvirt/networks/default.xml");
    if (stock.empty()) GTEST_SKIP() << "libvirt's stock network XML is not installed";
    VirtNetwork n;
    parse_network_xml(stock, n);
    EXPECT_EQ(n.bridge, "virbr0");
    EXPECT_EQ(n.forward_mode, "nat") << "<forward/> without mode is NAT";
    EXPECT_EQ(n.addresses, std::vector<std::string>{"192.168.122.1/24"}) << "netmask 255.255.255.0 is /24";
    VirtNetwork isolated;
    parse_network_xml("<network><name>iso</name><bridge name='virbr9'/><ip address='10.9.0.1' prefix='16'/></network>", isolated);
    EXPECT_EQ(isolated.forward_mode, "");
    EXPECT_EQ(isolated.addresses, std::vector<std::string>{"10.9.0.1/16"});
    VirtPool p;
    parse_pool_xml(slurp(kTree / ".kvmready/libvirt/pool-default.xml"), p);
    EXPECT_EQ(p.type, "dir");
    EXPECT_EQ(p.target, "/var/lib/libvirt/images");
}

TEST(VirtParse, XmlEntitiesCommentsAndErrors) {
    const DomCapsFacts d = parse_domcaps(
        "<?xml version='1.0'?>\n<!-- c -->\n<domainCapabilities><path>/opt/q&amp;x&#47;y</path><domain>kvm</domain>"
        "<os supported='yes'><loader supported='yes'><value>/a&lt;b</value><enum name='secure'><value>yes</value></enum></loader>"
        "</os></domainCapabilities>");
    ASSERT_TRUE(d.present) << d.error;
    EXPECT_EQ(d.path, "/opt/q&x/y");
    EXPECT_EQ(d.loaders, std::vector<std::string>{"/a<b"});
    EXPECT_TRUE(d.secure_boot);
    const DomCapsFacts bad = parse_domcaps("<domainCapabilities>\n<path>x</domain>\n</domainCapabilities>");
    EXPECT_FALSE(bad.present);
    EXPECT_FALSE(bad.error.empty());
    EXPECT_FALSE(parse_domcaps("<capabilities/>").present) << "wrong root element";
    EXPECT_FALSE(parse_domcaps("").present);
    // Malformed numbers are reported, never thrown (the probe runs on its own thread).
    EXPECT_FALSE(parse_domcaps("<domainCapabilities><path>&#xZZ;</path></domainCapabilities>").present);
    EXPECT_TRUE(parse_domcaps("<domainCapabilities><vcpu max='99999999999999'/></domainCapabilities>").present);
    VirtNetwork odd;
    EXPECT_NO_THROW(parse_network_xml("<network><ip address='10.0.0.1' netmask='255.x.0.999999999999'/></network>", odd));
    EXPECT_NO_THROW(mount_covering(parse_mountinfo("1 0 0:1 / /a\\8xx rw - ext4 x rw\n"), "/a"));
}

TEST(VirtParse, QemuConfUserAndGroup) {
    // Debian's file: everything commented; the flush-left lines are the build's defaults.
    const std::string debian = slurp(kTree / "etc/libvirt/qemu.conf");
    ASSERT_FALSE(debian.empty());
    QemuUserFacts q;
    parse_qemu_conf(debian, q);
    EXPECT_EQ(q.user, "libvirt-qemu");
    EXPECT_EQ(q.group, "libvirt-qemu");
    EXPECT_EQ(q.user_source, "qemu.conf default (commented)");
    QemuUserFacts set;
    parse_qemu_conf(debian + "\nuser = \"+0\"\ngroup = \"kvm\"  \n", set);
    EXPECT_EQ(set.user, "+0");
    EXPECT_EQ(set.group, "kvm");
    EXPECT_EQ(set.user_source, "qemu.conf");
    QemuUserFacts examples;
    parse_qemu_conf("#       user = \"qemu\"   # A user named \"qemu\"\n#user = \"100\"  # example\n", examples);
    EXPECT_EQ(examples.user, "") << "indented or annotated examples are not defaults";
}

// The filesystem type at path and, in *mount_point, where it is mounted.
std::string mount_fstype(const std::string& mountinfo, const std::string& path, std::string* mount_point = nullptr) {
    const auto mounts = parse_mountinfo(mountinfo);
    const Mount* m = mount_covering(mounts, path);
    if (mount_point) *mount_point = m ? m->entry.mountpoint : "";
    return m ? m->entry.fstype : "";
}

TEST(VirtParse, MountInfoLongestPrefixAndEscapes) {
    const std::string mi =
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:50 / /var/lib rw - xfs /dev/vdb rw\n"
        "41 40 0:51 / /var/lib/libvirt\\040images rw shared:5 - tmpfs tmpfs rw\n"
        "42 40 0:52 / /var/lib/libvirtX rw - btrfs /dev/vdc rw\n";
    std::string mp;
    EXPECT_EQ(mount_fstype(mi, "/var/lib/libvirt/images", &mp), "xfs");
    EXPECT_EQ(mp, "/var/lib");
    EXPECT_EQ(mount_fstype(mi, "/var/lib/libvirt images/a.qcow2", &mp), "tmpfs");
    EXPECT_EQ(mp, "/var/lib/libvirt images");
    EXPECT_EQ(mount_fstype(mi, "/home", &mp), "ext4");
    EXPECT_EQ(mp, "/");
    // Over-mounts: the later line for the same mount point wins.
    EXPECT_EQ(mount_fstype(mi + "43 27 0:60 / /var/lib rw - zfs pool rw\n", "/var/lib/x"), "zfs");
}

// The one mountinfo parser every probe shares (core/mountinfo.cpp).
TEST(VirtParse, MountTableFieldsAndTheMountInEffect) {
    const auto mounts = parse_mountinfo(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw,errors=remount-ro\n"
        "23 22 0:5 / /dev rw,nosuid shared:2 master:1 - devtmpfs udev rw,size=4096k\n"
        "24 22 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "garbage line\n"
        "25 22 0:23 / /mnt/a\\134b rw - nfs4 srv:/x\\040y rw\n"
        "26 22 253:2 / / rw - xfs /dev/mapper/root rw\n");
    ASSERT_EQ(mounts.size(), 5u) << "the line without fields is skipped";
    EXPECT_EQ(mounts[1].devnum, "0:5");
    EXPECT_EQ(mounts[1].entry.fstype, "devtmpfs") << "optional fields (shared:, master:) come before the separator";
    EXPECT_EQ(mounts[1].entry.source, "udev");
    EXPECT_EQ(mounts[1].entry.super_options, "rw,size=4096k");
    EXPECT_EQ(mounts[3].entry.mountpoint, "/mnt/a\\b");
    EXPECT_EQ(mounts[3].entry.source, "srv:/x y");
    const Mount* root = mount_covering(mounts, "/etc/passwd");
    ASSERT_NE(root, nullptr);
    EXPECT_EQ(root->devnum, "253:2") << "a later mount of / shadows the first";
    EXPECT_EQ(mount_covering(mounts, "/sys/fs/cgroup/kvm")->entry.fstype, "cgroup2");
    EXPECT_EQ(mount_covering({}, "/"), nullptr);
}

TEST(VirtParse, QemuVersionLine) {
    EXPECT_EQ(parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright"), "7.2.22");
    EXPECT_EQ(parse_qemu_version("QEMU emulator version 8.2.0 (qemu-kvm-8.2.0-11.el9_4)"), "8.2.0");
    EXPECT_EQ(parse_qemu_version("garbage"), "");
}

TEST(VirtParse, SocketForUri) {
    auto none = [](const std::string&) { return false; };
    auto modular = [](const std::string& p) { return p == "/run/libvirt/virtqemud-sock"; };
    EXPECT_EQ(host::libvirt_socket_for("qemu:///system", none), "/run/libvirt/libvirt-sock");
    EXPECT_EQ(host::libvirt_socket_for("qemu:///system", modular), "/run/libvirt/virtqemud-sock");
    EXPECT_EQ(host::libvirt_socket_for("qemu+unix:///system?socket=/tmp/a%20b/sock&mode=legacy", none), "/tmp/a b/sock");
    EXPECT_EQ(host::libvirt_socket_for("qemu+ssh://root@h/system", none), "");
    EXPECT_EQ(host::libvirt_socket_for("qemu:///session", none), "");
}

// ---- checks on facts ----

// Facts of a healthy libvirt host, from the committed real recording.
Facts recorded() {
    ProbeOptions o;
    auto h = host::make_rooted_host(kTree.string());
    return probe(*h, o);
}

TEST(VirtChecks, RecordedHealthyDaemonPassesAndDependentsFollowIt) {
    Facts f = recorded();
    ASSERT_TRUE(f.virt.libvirt.snapshot.connected);
    Report r = run_checks(f, {});
    EXPECT_EQ(find(r, "libvirt.daemon").status, Status::Pass);
    EXPECT_EQ(find(r, "libvirt.network").status, Status::Pass);
    EXPECT_EQ(find(r, "storage.pool").status, Status::Pass);

    // The daemon died: every libvirt-dependent check is skipped, pointing at it.
    Facts dead = f;
    dead.virt.libvirt.snapshot = {};
    dead.virt.libvirt.snapshot.attempted = true;
    dead.virt.libvirt.snapshot.uri = "qemu:///system";
    dead.virt.libvirt.snapshot.socket_path = "/run/libvirt/libvirt-sock";
    dead.virt.libvirt.snapshot.socket_error = "Connection refused";
    dead.virt.libvirt.snapshot.error = "Failed to connect socket to '/var/run/libvirt/libvirt-sock-ro': Connection refused";
    r = run_checks(dead, {});
    EXPECT_EQ(find(r, "libvirt.daemon").status, Status::Fail);
    EXPECT_NE(find(r, "libvirt.daemon").message.find("Connection refused"), std::string::npos);
    for (const char* id : {"libvirt.manage", "libvirt.domcaps-kvm", "libvirt.network", "storage.pool"}) {
        EXPECT_EQ(find(r, id).status, Status::Skip) << id;
        EXPECT_EQ(find(r, id).message, "needs libvirt.daemon (failed)") << id;
    }
    EXPECT_NE(r.verdict, Verdict::NotReady) << "libvirt is recommended, not required";

    // Not installed at all: not asked (the probe does not load libvirt), skip, not a warning.
    Facts absent = dead;
    absent.virt.libvirt.installed = false;
    absent.virt.libvirt.daemon_binaries.clear();
    absent.virt.libvirt.snapshot = {};
    absent.virt.libvirt.snapshot.uri = "qemu:///system";
    absent.virt.libvirt.snapshot.not_attempted_reason = "libvirt is not installed";
    r = run_checks(absent, {});
    EXPECT_EQ(find(r, "libvirt.daemon").status, Status::Skip);
}

TEST(VirtChecks, FactsRoundTripThroughJson) {
    for (const char* tree : {"virt-libvirtd-netns", "virt-libvirtd-stopped", "virt-qemu-user-no-kvm"}) {
        auto h = host::make_rooted_host((fs::path(KVMREADY_FIXTURES_DIR) / tree).string());
        const Facts f = probe(*h, ProbeOptions{});
        const Facts back = facts_from_json(nlohmann::json::parse(facts_to_json(f).dump()));
        const Report a = run_checks(f, {"qemu", "libvirt", "storage", "kvm.qemu-user-access"});
        const Report b = run_checks(back, {"qemu", "libvirt", "storage", "kvm.qemu-user-access"});
        ASSERT_EQ(a.findings.size(), b.findings.size());
        for (size_t i = 0; i < a.findings.size(); ++i) {
            EXPECT_EQ(a.findings[i].status, b.findings[i].status) << tree << " " << a.findings[i].id;
            EXPECT_EQ(a.findings[i].message, b.findings[i].message) << tree << " " << a.findings[i].id;
            EXPECT_EQ(a.findings[i].evidence, b.findings[i].evidence) << tree << " " << a.findings[i].id;
        }
        // The XML stays in the recording, not in the facts.
        EXPECT_EQ(facts_to_json(f)["virt"]["libvirt"]["snapshot"].value("domcaps_kvm_xml", ""), "");
    }
}

TEST(VirtChecks, TimeoutsAreNamedNotGuessed) {
    Facts f = recorded();
    auto& s = f.virt.libvirt.snapshot;
    // Connected, but the capability calls did not answer before the deadline.
    s.timed_out = true;
    s.unanswered = {"domcaps-kvm", "domcaps-qemu", "capabilities", "hypervisor-version"};
    f.virt.libvirt.domcaps_kvm = {};
    Report r = run_checks(f, {});
    EXPECT_EQ(find(r, "libvirt.daemon").status, Status::Pass);
    EXPECT_NE(find(r, "libvirt.daemon").message.find("still busy with domcaps-kvm"), std::string::npos);
    EXPECT_EQ(find(r, "libvirt.domcaps-kvm").status, Status::Unknown);
    EXPECT_EQ(find(r, "libvirt.network").status, Status::Pass) << "answers before the deadline are kept";
    // Not connected at all: a stopped process is named, with the command to resume it.
    s = {};
    s.attempted = true;
    s.uri = "qemu:///system";
    s.timed_out = true;
    s.daemon = "libvirtd";
    s.daemon_pid = 4242;
    s.daemon_state = "T";
    s.elapsed_ms = 3000;
    s.unanswered = {"open"};
    r = run_checks(f, {});
    const Finding& d = find(r, "libvirt.daemon");
    EXPECT_EQ(d.status, Status::Fail);
    EXPECT_NE(d.message.find("libvirtd (PID 4242) is stopped"), std::string::npos) << d.message;
    EXPECT_EQ(d.remediation.commands, std::vector<std::string>{"kill -CONT 4242"});
    s.daemon_state = "S";
    r = run_checks(f, {});
    EXPECT_NE(find(r, "libvirt.daemon").message.find("did not answer within 3000 ms"), std::string::npos);
}

TEST(VirtChecks, NetworkStatesAndExactCommands) {
    Facts f = recorded();
    f.request.connect_uri = "qemu:///system?socket=/tmp/x/libvirt-sock";
    auto& nets = f.virt.libvirt.networks;
    ASSERT_EQ(nets.size(), 1u);
    nets[0].autostart = false;
    Report r = run_checks(f, {});
    EXPECT_EQ(find(r, "libvirt.network").status, Status::Warn);
    EXPECT_EQ(find(r, "libvirt.network").remediation.commands,
              std::vector<std::string>{"virsh -c 'qemu:///system?socket=/tmp/x/libvirt-sock' net-autostart default"});
    nets[0].autostart = true;
    nets[0].bridge_exists = false;
    r = run_checks(f, {});
    EXPECT_EQ(find(r, "libvirt.network").status, Status::Fail);
    EXPECT_NE(find(r, "libvirt.network").message.find("bridge virbr0 does not exist"), std::string::npos);
    f.request.network = "lab";
    f.request.network_given = true;
    r = run_checks(f, {});
    EXPECT_EQ(find(r, "libvirt.network").status, Status::Fail);
    EXPECT_NE(find(r, "libvirt.network").message.find("network lab is not defined (defined: default)"), std::string::npos);
    EXPECT_EQ(find(r, "libvirt.network").remediation.fix_id, "") << "the fix id is for the default network only";
}

TEST(VirtChecks, PoolSpaceAndPermissions) {
    Facts f = recorded();
    auto& d = f.virt.pool_dir;
    ASSERT_FALSE(d.chain.empty());
    d.usage.avail_bytes = 3ull << 30;
    Report r = run_checks(f, {});
    EXPECT_EQ(find(r, "storage.pool").status, Status::Warn);
    EXPECT_NE(find(r, "storage.pool").message.find("only 3.0 GiB free"), std::string::npos) << find(r, "storage.pool").message;
    d.usage.avail_bytes = 100ull << 30;
    // /var/lib/libvirt 0700 root: libvirt-qemu cannot search it...
    d.chain[3].mode = 0700;
    d.chain[3].uid = 0;
    r = run_checks(f, {});
    EXPECT_EQ(find(r, "storage.pool").status, Status::Fail);
    EXPECT_EQ(find(r, "storage.pool").remediation.commands, std::vector<std::string>{"chmod o+x /var/lib/libvirt"});
    // ...unless an ACL entry names it.
    d.chain[3].acl = std::vector<VirtAcl>{{"user_obj", -1, 7}, {"user", f.virt.qemu_user.uid, 1}, {"group_obj", -1, 0}, {"mask", -1, 1},
                                          {"other", -1, 0}};
    r = run_checks(f, {});
    EXPECT_EQ(find(r, "storage.pool").status, Status::Pass) << find(r, "storage.pool").message;
}

// A pool made by `virsh pool-create-as` is transient: libvirt refuses
// pool-autostart on it, so the advice defines it from its running XML first
// (virt_install_test.cpp runs these commands against a real daemon).
TEST(VirtChecks, TransientPoolIsDefinedBeforeItIsAutostarted) {
    Facts f = recorded();
    auto& pools = f.virt.libvirt.pools;
    ASSERT_EQ(pools.size(), 1u);
    pools[0].persistent = false;
    pools[0].autostart = false;
    Report r = run_checks(f, {});
    const Finding& p = find(r, "storage.pool");
    EXPECT_EQ(p.status, Status::Warn);
    EXPECT_NE(p.message.find("transient"), std::string::npos) << p.message;
    EXPECT_EQ(p.remediation.commands, (std::vector<std::string>{"virsh pool-dumpxml default > /tmp/default-pool.xml",
                                                                "virsh pool-define /tmp/default-pool.xml", "virsh pool-autostart default"}));
    EXPECT_EQ(p.remediation.fix_id, "storage.pool-default") << "the fix handles a transient pool too";
    pools[0].persistent = true;
    r = run_checks(f, {});
    EXPECT_EQ(find(r, "storage.pool").remediation.commands, std::vector<std::string>{"virsh pool-autostart default"});
}

// The verdict for libvirt's QEMU user equals what the kernel does when that
// user, holding exactly the groups libvirt gives it, opens a real KVM node.
TEST(VirtLiveAccess, QemuUserVerdictMatchesARealOpen) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mknod, setuid)";
    struct stat kvm {};
    if (::stat("/dev/kvm", &kvm) != 0) GTEST_SKIP() << "no /dev/kvm to copy the device number from";
    auto h = host::make_live_host();
    ProbeOptions o;
    o.request.connect_uri = "qemu+unix:///system?socket=/nonexistent";  // no daemon needed
    Facts f;
    probe_virt(*h, o, f);
    if (!f.virt.qemu_user.libvirt_qemu_driver) GTEST_SKIP() << "libvirt's QEMU driver is not installed";
    ASSERT_TRUE(f.virt.qemu_user.found) << f.virt.qemu_user.lookup_error;
    const auto& q = f.virt.qemu_user;
    char tmpl[] = "/tmp/kvmready-virt-access-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    ::chmod(tmpl, 0755);
    const std::string node = std::string(tmpl) + "/kvm";
    struct group* kg = ::getgrnam("kvm");
    const gid_t kvm_gid = kg ? kg->gr_gid : 0;
    struct Case {
        unsigned mode;
        uid_t uid;
        gid_t gid;
    };
    const std::vector<Case> cases = {{0600, 0, 0}, {0660, 0, kvm_gid}, {0666, 0, 0}, {0660, 0, 0}, {0600, q.uid, 0}, {0606, 0, kvm_gid}};
    for (const auto& c : cases) {
        ::unlink(node.c_str());
        ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | c.mode, kvm.st_rdev), 0) << std::strerror(errno);
        ASSERT_EQ(::chown(node.c_str(), c.uid, c.gid), 0);
        ASSERT_EQ(::chmod(node.c_str(), c.mode), 0);
        f.device.path = node;
        f.device.stat = h->stat(node);
        f.device.acl.reset();
        f.device.group_name = c.gid == kvm_gid && kg ? "kvm" : "root";
        const Report r = run_checks(f, {"kvm.qemu-user-access"});
        const Status judged = find(r, "kvm.qemu-user-access").status;
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            std::vector<gid_t> groups(q.gids.begin(), q.gids.end());
            if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(q.gid) != 0 || ::setuid(q.uid) != 0) ::_exit(2);
            const int fd = ::open(node.c_str(), O_RDWR);
            ::_exit(fd >= 0 ? 0 : 1);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFEXITED(st));
        ASSERT_NE(WEXITSTATUS(st), 2) << "could not become " << q.user;
        EXPECT_EQ(judged == Status::Pass, WEXITSTATUS(st) == 0)
            << "mode " << std::oct << c.mode << std::dec << " uid " << c.uid << " gid " << c.gid << ": " << find(r, "kvm.qemu-user-access").message;
    }
    fs::remove_all(tmpl);
}

}  // namespace
