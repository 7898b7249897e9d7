// pkg.virt-stack planned from recorded host trees, for the families that
// cannot be installed for real here: Ubuntu (apt) and the RHEL family (dnf,
// yum), whose repositories this machine cannot reach, so dnf and yum are
// tested as plans only. Each tree is a bare OS written by the test: its
// os-release, its package tools, its package database (dpkg's status file;
// for rpm the recorded answer of `rpm -qa`), no QEMU and no libvirt. The
// probe reads it through a rooted Host, as `fix --from` reads a bundle.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/facts.hpp"
#include "core/facts_packages.hpp"
#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "fixes/packages.hpp"
#include "host/host.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace kvmready;
using testsupport::TempDir;

namespace {

void spit(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

std::string dpkg_stanza(const std::string& name, const std::string& status = "install ok installed") {
    return "Package: " + name + "\nStatus: " + status + "\nArchitecture: amd64\nVersion: 1.0\n\n";
}

// A bare host: os-release and /proc/sys/kernel/arch; the caller adds the rest.
fs::path bare_tree(const fs::path& dir, const std::string& os_release) {
    spit(dir / "etc/os-release", os_release);
    spit(dir / "proc/sys/kernel/arch", "x86_64\n");
    spit(dir / "proc/sys/kernel/osrelease", "6.1.0-test\n");
    return dir;
}

void record_rpm(const fs::path& dir, const std::string& installed) {
    nlohmann::json run = {{"argv", rpm_installed_query()}, {"result", {{"started", true}, {"exit_code", 0}, {"out", installed}}}};
    spit(dir / ".kvmready/host.json", nlohmann::json{{"format", 1}, {"commands", {run}}}.dump());
}

struct Planned {
    Facts facts;
    std::optional<fix::Plan> plan;
};

// The plan for the tree as `fix` on that host makes it (not offline: the
// options name no --root; the facts come from the tree).
Planned plan_for(const fs::path& dir, const std::vector<std::string>& packages = {}) {
    auto h = host::make_rooted_host(dir.string());
    ProbeOptions po;
    po.config = true;
    Planned out{probe(*h, po), std::nullopt};
    const Report report = run_checks(out.facts, {});
    fix::FixOptions o;
    o.packages = packages;
    out.plan = fix::find_fix("pkg.virt-stack")->plan(fix::PlanInput{out.facts, report, o});
    return out;
}

std::vector<std::string> planned_packages(const fix::Plan& p) {
    return p.steps.at(0).args.at("packages").get<std::vector<std::string>>();
}

const char* kUbuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n";
const char* kRocky = "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.4\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";

}  // namespace

TEST(FixPackagesPlan, DpkgStatusCountsOnlyInstalledPackages) {
    const std::string status = dpkg_stanza("bash") + dpkg_stanza("ovmf", "deinstall ok config-files") +
                               dpkg_stanza("libc6") + dpkg_stanza("libc6") + dpkg_stanza("qemu-utils", "install ok half-installed") +
                               dpkg_stanza("zsh", "hold ok installed");
    EXPECT_EQ(dpkg_installed(status), (std::vector<std::string>{"bash", "libc6", "zsh"}));
}

TEST(FixPackagesPlan, UbuntuPlansAptForWhatIsMissing) {
    TempDir t;
    const fs::path d = bare_tree(t.path, kUbuntu);
    spit(d / "usr/bin/apt-get", "");
    spit(d / "usr/bin/dpkg", "");
    spit(d / "var/lib/dpkg/status", dpkg_stanza("bash") + dpkg_stanza("qemu-utils"));
    const auto r = plan_for(d);
    const auto& pk = r.facts.config.packages;
    EXPECT_EQ(pk.family, "apt") << pk.family_from;
    EXPECT_EQ(pk.source, "dpkg-status");
    EXPECT_FALSE(pk.lists_present);
    ASSERT_TRUE(r.plan.has_value());
    EXPECT_EQ(r.plan->applicability, fix::Applicability::Confirm);
    // qemu-utils is there already; the rest of the stack is planned.
    EXPECT_EQ(planned_packages(*r.plan), (std::vector<std::string>{"qemu-system-x86", "libvirt-daemon-system", "dnsmasq-base", "ovmf"}));
    const auto& cmds = r.plan->steps.at(0).commands;
    ASSERT_EQ(cmds.size(), 2u);  // no package lists yet: update first
    EXPECT_EQ(cmds[0], fix::update_argv());
    EXPECT_EQ(cmds[1], (std::vector<std::string>{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends",
                                                 "qemu-system-x86", "libvirt-daemon-system", "dnsmasq-base", "ovmf"}));

    // With package lists present, no update; with the whole stack installed
    // (and QEMU and libvirt found), nothing at all.
    spit(d / "var/lib/apt/lists/deb.debian.org_debian_dists_noble_main_binary-amd64_Packages.lz4", "");
    const auto listed = plan_for(d);
    ASSERT_TRUE(listed.plan.has_value());
    EXPECT_EQ(listed.plan->steps.at(0).commands.size(), 1u);
    std::string all;
    for (const char* p : {"qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "dnsmasq-base", "ovmf"}) all += dpkg_stanza(p);
    spit(d / "var/lib/dpkg/status", all);
    spit(d / "usr/bin/qemu-system-x86_64", "");
    spit(d / "usr/sbin/libvirtd", "");
    spit(d / "etc/libvirt/libvirtd.conf", "");
    const auto done = plan_for(d);
    EXPECT_TRUE(done.facts.virt.libvirt.installed);
    EXPECT_FALSE(done.plan.has_value()) << planned_packages(*done.plan).size();
}

TEST(FixPackagesPlan, RockyPlansDnfFromTheRecordedRpmQuery) {
    TempDir t;
    const fs::path d = bare_tree(t.path, kRocky);
    for (const char* tool : {"usr/bin/dnf", "usr/bin/yum", "usr/bin/rpm"}) spit(d / tool, "");
    record_rpm(d, "bash\nglibc\nqemu-img\n");
    const auto r = plan_for(d);
    const auto& pk = r.facts.config.packages;
    EXPECT_EQ(pk.family, "dnf") << pk.family_from;
    EXPECT_EQ(pk.source, "rpm") << pk.error;
    ASSERT_TRUE(r.plan.has_value());
    EXPECT_EQ(planned_packages(*r.plan), (std::vector<std::string>{"qemu-kvm", "libvirt", "edk2-ovmf"}));
    ASSERT_EQ(r.plan->steps.at(0).commands.size(), 1u);
    EXPECT_EQ(r.plan->steps.at(0).commands[0], (std::vector<std::string>{"dnf", "install", "-y", "qemu-kvm", "libvirt", "edk2-ovmf"}));

    // RHEL's emulator is /usr/libexec/qemu-kvm: found, QEMU is not planned again.
    spit(d / "usr/libexec/qemu-kvm", "");
    record_rpm(d, "bash\nqemu-kvm\nqemu-img\n");
    const auto with_qemu = plan_for(d);
    ASSERT_TRUE(with_qemu.plan.has_value());
    EXPECT_EQ(planned_packages(*with_qemu.plan), (std::vector<std::string>{"libvirt", "edk2-ovmf"}));
}

TEST(FixPackagesPlan, WithoutAnRpmAnswerTheStateIsUnknownAndTheWholeStackIsPlanned) {
    TempDir t;
    const fs::path d = bare_tree(t.path, "ID=centos\nID_LIKE=\"rhel fedora\"\nVERSION_ID=7\n");
    spit(d / "usr/bin/yum", "");  // CentOS 7: yum, no dnf
    const auto r = plan_for(d);
    const auto& pk = r.facts.config.packages;
    EXPECT_EQ(pk.family, "yum");
    EXPECT_FALSE(pk.known());
    EXPECT_NE(pk.error.find("rpm -qa"), std::string::npos) << pk.error;
    ASSERT_TRUE(r.plan.has_value());
    EXPECT_EQ(r.plan->steps.at(0).commands[0],
              (std::vector<std::string>{"yum", "install", "-y", "qemu-kvm", "qemu-img", "libvirt", "edk2-ovmf"}));
    bool says_unknown = false;
    for (const auto& n : r.plan->notes) says_unknown |= n.find("installed state unknown") != std::string::npos;
    EXPECT_TRUE(says_unknown);
}

TEST(FixPackagesPlan, NoKnownPackageManagerPlansNothing) {
    TempDir t;
    const fs::path d = bare_tree(t.path, "ID=arch\n");
    spit(d / "usr/bin/pacman", "");
    const auto r = plan_for(d);
    EXPECT_EQ(r.facts.config.packages.family, "");
    EXPECT_FALSE(r.plan.has_value());
    // A Debian whose apt-get is gone has no package manager either.
    TempDir t2;
    const fs::path deb = bare_tree(t2.path, "ID=debian\n");
    spit(deb / "var/lib/dpkg/status", dpkg_stanza("bash"));
    EXPECT_FALSE(plan_for(deb).plan.has_value());
}

TEST(FixPackagesPlan, PackagesOptionNamesTheStack) {
    TempDir t;
    const fs::path d = bare_tree(t.path, kUbuntu);
    spit(d / "usr/bin/apt-get", "");
    spit(d / "var/lib/dpkg/status", dpkg_stanza("bash") + dpkg_stanza("libnuma1"));
    const auto r = plan_for(d, {"qemu-utils", "libnuma1", "bridge-utils"});
    ASSERT_TRUE(r.plan.has_value());
    EXPECT_EQ(planned_packages(*r.plan), (std::vector<std::string>{"qemu-utils", "bridge-utils"}));
    EXPECT_FALSE(plan_for(d, {"libnuma1", "bash"}).plan.has_value());
}

// The facts travel in a bundle: `fix --from` on another machine plans the
// same packages for the recorded bare host.
TEST(FixPackagesPlan, ABundleOfABareHostPlansTheStack) {
    TempDir t;
    const fs::path d = bare_tree(t.path / "tree", kRocky);
    for (const char* tool : {"usr/bin/dnf", "usr/bin/rpm"}) spit(d / tool, "");
    record_rpm(d, "bash\n");
    const fs::path bundle = t.path / "rocky.tar.gz";
    const auto rep = testsupport::run_captured({KVMREADY_BINARY, "report", "--root", d.string(), "-o", bundle.string(), "--no-redact"}, 60000);
    ASSERT_EQ(rep.exit_code, 0) << rep.err;
    const auto from = testsupport::run_captured({KVMREADY_BINARY, "fix", "--from", bundle.string(), "--only", "pkg.virt-stack", "--json"}, 60000);
    ASSERT_EQ(from.exit_code, 2) << from.out << from.err;
    const auto j = nlohmann::json::parse(from.out);
    ASSERT_EQ(j["plans"].size(), 1u) << from.out;
    EXPECT_EQ(j["plans"][0]["fix_id"], "pkg.virt-stack");
    EXPECT_EQ(j["plans"][0]["applicability"], "confirm");
    EXPECT_NE(from.out.find("dnf install -y qemu-kvm qemu-img libvirt edk2-ovmf"), std::string::npos) << from.out;
}
