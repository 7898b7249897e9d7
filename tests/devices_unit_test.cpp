// devices.passthrough's parts on data built in code: the config space parser
// (well-formed and hostile bytes), the per-device verdicts, the sysfs
// enumeration of a tree without a udev snapshot (real files in a temp root),
// and the devices.vfio-bind planner's refusals. The real kernel's answers are
// in devices_guest_test.cpp.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "checks/devices_verdict.hpp"
#include "core/pci_config.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/host.hpp"
#include "support/temp_dir.hpp"

namespace kvmready {
namespace {

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

void put16(std::string& b, size_t off, uint16_t v) {
    b[off] = static_cast<char>(v & 0xff);
    b[off + 1] = static_cast<char>(v >> 8);
}
void put32(std::string& b, size_t off, uint32_t v) {
    put16(b, off, static_cast<uint16_t>(v & 0xffff));
    put16(b, off + 2, static_cast<uint16_t>(v >> 16));
}

// A root port's config space: PCIe capability at 0x40, AER at 0x100, ACS at 0x148.
std::string port_config(uint16_t acs_control) {
    std::string b(4096, '\0');
    put16(b, 0x06, 0x10);  // capability list
    b[0x34] = 0x40;
    b[0x40] = 0x10;        // PCI Express
    b[0x41] = 0x00;
    put32(b, 0x100, 0x0001u | (1u << 16) | (0x148u << 20));  // AER, next 0x148
    put32(b, 0x148, 0x000du | (1u << 16));                   // ACS, last
    put16(b, 0x14c, 0x5f);
    put16(b, 0x14e, acs_control);
    return b;
}

TEST(DevicesUnit, ConfigSpaceFindsPcieAndAcs) {
    const PciConfig c = parse_pci_config(port_config(0x1d));
    EXPECT_TRUE(c.is_pcie);
    EXPECT_TRUE(c.acs.config_read);
    EXPECT_TRUE(c.acs.present);
    EXPECT_EQ(c.acs.capability, 0x5f);
    EXPECT_EQ(c.acs.control & kAcsRequired, kAcsRequired);
    // 64 bytes, as an unprivileged reader gets: no extended space, no verdict on ACS.
    const PciConfig user = parse_pci_config(port_config(0).substr(0, 64));
    EXPECT_FALSE(user.acs.config_read);
    EXPECT_FALSE(user.acs.present);
}

TEST(DevicesUnit, HostileConfigSpaceEndsCleanly) {
    EXPECT_FALSE(parse_pci_config("").is_pcie);
    EXPECT_FALSE(parse_pci_config(std::string(4096, '\xff')).acs.present);
    std::string loop = port_config(0);
    put32(loop, 0x148, 0x0001u | (0x148u << 20));  // points at itself
    EXPECT_FALSE(parse_pci_config(loop).acs.present);
    std::string std_loop(256, '\0');
    put16(std_loop, 0x06, 0x10);
    std_loop[0x34] = 0x40;
    std_loop[0x41] = 0x40;                         // standard list loops too
    EXPECT_FALSE(parse_pci_config(std_loop).is_pcie);
    std::string cut = port_config(0x1d).substr(0, 0x14a);  // ACS header without its registers
    EXPECT_FALSE(parse_pci_config(cut).acs.present);
}

PciDevice dev(const std::string& bdf, const std::string& id, const std::string& driver, int group, const std::string& cls = "020000") {
    PciDevice d;
    d.bdf = bdf;
    d.vendor = id.substr(0, 4);
    d.device = id.substr(5);
    d.driver = driver;
    d.iommu_group = group;
    d.class_code = cls;
    d.reset_method = "flr bus";
    return d;
}

DevicesFacts host_with_devices() {
    DevicesFacts f;
    f.probed = true;
    f.enumeration = "test";
    f.vfio_modules = {{"vfio", "loaded"}, {"vfio_pci", "loadable"}, {"vfio_iommu_type1", "loaded"}};
    f.interrupt_remapping = true;
    f.pci = {dev("0000:00:1c.0", "8086:a110", "pcieport", 1, "060400"), dev("0000:01:00.0", "10de:1db6", "nouveau", 2, "030000"),
             dev("0000:01:00.1", "10de:10f2", "snd_hda_intel", 2, "040300"), dev("0000:02:00.0", "144d:a808", "nvme", 3, "010802"),
             dev("0000:03:00.0", "144d:a808", "nvme", 4, "010802"), dev("0000:04:00.0", "8086:1533", "igb", 5)};
    f.pci[3].root_fs = true;
    f.pci[3].block_devices = {"nvme0n1"};
    f.pci[5].default_route = true;
    f.pci[5].net_devices = {"eno1"};
    return f;
}

TEST(DevicesUnit, GroupsHostDevicesAndIds) {
    const DevicesFacts f = host_with_devices();
    using checks::judge_device;
    const auto gpu = judge_device(f, f.pci[1]);
    EXPECT_TRUE(gpu.assignable);
    EXPECT_FALSE(gpu.ready);
    ASSERT_EQ(gpu.group_endpoints.size(), 1u);
    EXPECT_EQ(gpu.group_endpoints[0]->bdf, "0000:01:00.1");
    EXPECT_TRUE(std::any_of(gpu.notes.begin(), gpu.notes.end(), [](const std::string& n) { return has(n, "assign both or neither"); }));
    // Both functions must be bound; the ID appears nowhere else, so vfio-pci.ids= is offered.
    EXPECT_EQ(std::count_if(gpu.todo.begin(), gpu.todo.end(), [](const std::string& t) { return has(t, "driver_override"); }), 2);
    EXPECT_TRUE(std::any_of(gpu.todo.begin(), gpu.todo.end(), [](const std::string& t) { return has(t, "vfio-pci.ids=10de:1db6"); }));

    const auto root = judge_device(f, f.pci[3]);
    EXPECT_FALSE(root.assignable);
    ASSERT_FALSE(root.why.empty());
    EXPECT_TRUE(has(root.why[0], "holds the root filesystem (nvme0n1): assigning it cuts the host off")) << root.why[0];
    // Its twin may go, but not through vfio-pci.ids=: that would take the root disk too.
    const auto twin = judge_device(f, f.pci[4]);
    EXPECT_TRUE(twin.assignable);
    EXPECT_TRUE(std::none_of(twin.todo.begin(), twin.todo.end(), [](const std::string& t) { return has(t, "vfio-pci.ids=144d:a808 on"); }));
    EXPECT_TRUE(std::any_of(twin.todo.begin(), twin.todo.end(), [](const std::string& t) { return has(t, "another device with that ID"); }));
    EXPECT_FALSE(judge_device(f, f.pci[5]).assignable);
    EXPECT_FALSE(judge_device(f, f.pci[0]).assignable) << "a port is never a guest device";
}

TEST(DevicesUnit, SharingAGroupWithAHostDeviceOrLackingRemappingRefuses) {
    DevicesFacts f = host_with_devices();
    f.pci[1].boot_vga = true;  // the audio function's group mate is the console
    const auto audio = checks::judge_device(f, f.pci[2]);
    EXPECT_FALSE(audio.assignable);
    EXPECT_TRUE(std::any_of(audio.why.begin(), audio.why.end(), [](const std::string& w) {
        return has(w, "shares IOMMU group 2 with 0000:01:00.0, which is the boot display");
    }));
    f = host_with_devices();
    f.interrupt_remapping = false;
    EXPECT_FALSE(checks::judge_device(f, f.pci[4]).assignable);
    f.allow_unsafe_interrupts = "Y";
    EXPECT_TRUE(checks::judge_device(f, f.pci[4]).assignable);
    f.pci[4].reset_method = "";
    const auto v = checks::judge_device(f, f.pci[4]);
    EXPECT_TRUE(std::any_of(v.notes.begin(), v.notes.end(), [](const std::string& n) { return has(n, "cannot be reset"); }));
}

TEST(DevicesUnit, DeviceSelectorsByAddressAndId) {
    const DevicesFacts f = host_with_devices();
    EXPECT_EQ(checks::match_devices(f, "0000:02:00.0").size(), 1u);
    EXPECT_EQ(checks::match_devices(f, "02:00.0").size(), 1u);
    EXPECT_EQ(checks::match_devices(f, "144D:A808").size(), 2u);
    EXPECT_TRUE(checks::match_devices(f, "02:00").empty());
}

Facts facts_with(const DevicesFacts& d) {
    Facts f;
    f.source = "test";
    f.system.probed = true;
    f.system.iommu.groups_dir = true;
    f.system.iommu.groups = 5;
    f.devices = d;
    // What probe_config collects for the fix: neither file exists yet.
    f.config.files["/etc/udev/rules.d/61-kvmready-vfio.rules"];
    f.config.files["/etc/modprobe.d/kvmready-vfio.conf"];
    return f;
}

std::optional<fix::Plan> plan(const Facts& f, const std::string& device) {
    const Report r = run_checks(f, {"devices.passthrough"});
    fix::FixOptions o;
    o.device = device;
    const fix::FixSpec* spec = fix::find_fix("devices.vfio-bind");
    EXPECT_NE(spec, nullptr);
    return spec->plan(fix::PlanInput{f, r, o});
}

TEST(DevicesUnit, BindPlannerRefusesHostDevicesAndHalfGroups) {
    const Facts f = facts_with(host_with_devices());
    try {
        (void)plan(f, "0000:02:00.0");
        ADD_FAILURE() << "the root disk was planned";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(has(e.what(), "root filesystem")) << e.what();
    }
    try {
        (void)plan(f, "01:00.0");
        ADD_FAILURE() << "half a group was planned";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(has(e.what(), "assign both or neither")) << e.what();
        EXPECT_TRUE(has(e.what(), "0000:01:00.1")) << e.what();
    }
    EXPECT_THROW((void)plan(f, "0000:09:00.0"), std::runtime_error);
    const auto p = plan(f, "01:00.0,01:00.1");
    ASSERT_TRUE(p.has_value());
    std::vector<std::string> ops;
    for (const auto& s : p->steps) ops.push_back(s.op + " " + s.args.value("bdf", s.args.value("path", "")));
    EXPECT_EQ(ops, (std::vector<std::string>{"command ", "pci.driver 0000:01:00.0", "pci.driver 0000:01:00.1",
                                             "file.write /etc/udev/rules.d/61-kvmready-vfio.rules",
                                             "file.write /etc/modprobe.d/kvmready-vfio.conf"}));
    EXPECT_TRUE(has(p->steps.back().args.value("content", ""), "softdep nouveau pre: vfio-pci"));
    EXPECT_TRUE(has(p->steps.back().args.value("content", ""), "softdep snd_hda_intel pre: vfio-pci"));
}

TEST(DevicesUnit, BindPlannerIsIdempotent) {
    DevicesFacts d = host_with_devices();
    d.pci[4].driver = "vfio-pci";
    Facts f = facts_with(d);
    f.config.files["/etc/udev/rules.d/61-kvmready-vfio.rules"].content =
        "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", ATTR{driver_override}=\"vfio-pci\"\n";
    EXPECT_FALSE(plan(f, "0000:03:00.0").has_value());
}

// A VM without any IOMMU: iommu.enabled carries the diagnosis, and
// devices.passthrough is not applicable (unless asked about a device), with
// its device list kept as evidence.
Facts without_iommu() {
    Facts f = facts_with(host_with_devices());
    f.system.iommu = {};
    f.system.iommu.acpi_tables_read = true;
    f.system.iommu.acpi_tables = {"APIC", "FACP", "DSDT"};
    for (auto& d : f.devices.pci) d.iommu_group.reset();
    return f;
}

const Finding* finding(const Report& r, const std::string& id) {
    for (const auto& f : r.findings)
        if (f.id == id) return &f;
    return nullptr;
}

TEST(DevicesUnit, NoIommuAtAllIsIommuEnabledsFindingNotAPassthroughWarning) {
    Facts f = without_iommu();
    const Report both = run_checks(f, {"iommu", "devices"});
    const Finding* io = finding(both, "iommu.enabled");
    const Finding* dev = finding(both, "devices.passthrough");
    ASSERT_TRUE(io && dev);
    EXPECT_EQ(io->status, Status::Warn);
    EXPECT_EQ(dev->status, Status::Skip) << dev->message;
    EXPECT_TRUE(has(dev->message, "not applicable: this host has no IOMMU")) << dev->message;
    EXPECT_TRUE(has(dev->message, "iommu.enabled")) << dev->message;
    EXPECT_TRUE(dev->remediation.text.empty()) << "the advice is iommu.enabled's, once";
    ASSERT_TRUE(dev->evidence.contains("devices"));
    EXPECT_EQ(dev->evidence["devices"].size(), 5u) << dev->evidence.dump(2);
    for (const auto& d : dev->evidence["devices"]) {
        EXPECT_TRUE(d["iommu_group"].is_null());
        EXPECT_FALSE(d["assignable"].get<bool>());
    }
    EXPECT_EQ(both.verdict, Verdict::PassedWithWarnings);

    // Selected alone, the skip still counts iommu.enabled's warning (outside
    // the selection), and the next step is its command.
    const Report alone = run_checks(f, {"devices"});
    ASSERT_EQ(alone.findings.size(), 1u);
    EXPECT_EQ(alone.findings[0].status, Status::Skip);
    EXPECT_EQ(alone.verdict, Verdict::PassedWithWarnings) << alone.verdict_text;

    // Asked about one device, the answer is about that device.
    f.request.device = "0000:03:00.0";
    const Report one = run_checks(f, {"devices"});
    ASSERT_EQ(one.findings.size(), 1u);
    EXPECT_EQ(one.findings[0].status, Status::Warn);
    EXPECT_TRUE(has(one.findings[0].message, "0000:03:00.0 (")) << one.findings[0].message;
    EXPECT_TRUE(has(one.findings[0].message, "cannot be assigned to a guest: no IOMMU groups (")) << one.findings[0].message;
    EXPECT_EQ(one.findings[0].remediation.text, io->remediation.text);
    f.request.device = "0000:0f:00.0";
    EXPECT_EQ(run_checks(f, {"devices"}).findings[0].status, Status::Fail) << "no such device";
}

// The firmware describes an IOMMU the kernel does not drive: that is no
// "not applicable", both checks say what to do.
TEST(DevicesUnit, AnIommuWithoutGroupsStillWarns) {
    Facts f = without_iommu();
    f.system.iommu.ivrs = true;
    f.system.iommu.acpi_tables.push_back("IVRS");
    const Report r = run_checks(f, {"devices"});
    ASSERT_EQ(r.findings.size(), 1u);
    EXPECT_EQ(r.findings[0].status, Status::Warn);
    EXPECT_TRUE(has(r.findings[0].message, "no PCI device can be assigned to a guest: no IOMMU groups (the firmware describes AMD-Vi"))
        << r.findings[0].message;
    EXPECT_FALSE(r.findings[0].remediation.text.empty());
}

void write(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

TEST(DevicesUnit, SysfsEnumerationOfATreeWithoutUdevSnapshot) {
    testsupport::TempDir tmp;
    const auto base = tmp.path / "sys/bus/pci/devices";
    write(base / "0000:00:1c.0/uevent", "DRIVER=pcieport\nPCI_CLASS=60400\nPCI_ID=8086:A110\n");
    write(base / "0000:00:1c.0/0000:01:00.0/vendor", "0x10de\n");
    write(base / "0000:01:00.0/uevent", "PCI_CLASS=30000\nPCI_ID=10DE:1DB6\n");
    write(base / "not-a-device/uevent", "DRIVER=x\n");
    const auto h = host::make_rooted_host(tmp.path.string());
    const host::UdevSnapshot s = h->udev_devices();
    EXPECT_EQ(s.source, "sysfs");
    ASSERT_EQ(s.devices.size(), 2u);
    EXPECT_EQ(s.devices[0].driver, "pcieport");
    EXPECT_EQ(s.devices[1].sysname, "0000:01:00.0");
    EXPECT_EQ(s.devices[1].pci_parent, "0000:00:1c.0");
    EXPECT_EQ(s.devices[1].driver, "");
    EXPECT_TRUE(host::is_pci_address("10000:00:01.0"));
    EXPECT_FALSE(host::is_pci_address("0000:00:01.8"));
    EXPECT_FALSE(host::is_pci_address("0000:00:01"));
}

}  // namespace
}  // namespace kvmready
