// kvmready enumerates devices from sysfs itself where no udev database
// exists (src/host/udev_enum.cpp): these tests hold that enumeration to
// libudev's, on this machine's real devices and on the PCI tree libudev
// recorded in a q35 guest with bridges (tests/bundles/devices-q35-iommu).
#include <libudev.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/udev_enum.hpp"
#include "report/bundle.hpp"

namespace {

namespace fs = std::filesystem;
using kvmready::host::UdevDevice;
using kvmready::host::UdevSnapshot;

std::map<std::string, UdevDevice> by_key(const UdevSnapshot& s, const std::string& subsystem) {
    std::map<std::string, UdevDevice> out;
    for (const auto& d : s.devices)
        if (d.subsystem == subsystem) out[d.sysname] = d;
    return out;
}

std::string or_empty(const char* s) { return s ? s : ""; }

// libudev's own view of every block or net device, read here without
// kvmready's code: the reference the class-link reading must match.
std::map<std::string, UdevDevice> libudev_devices(const char* subsystem) {
    std::map<std::string, UdevDevice> out;
    udev* u = udev_new();
    if (!u) return out;
    udev_enumerate* e = udev_enumerate_new(u);
    udev_enumerate_add_match_subsystem(e, subsystem);
    udev_enumerate_scan_devices(e);
    udev_list_entry* entry = nullptr;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
        udev_device* d = udev_device_new_from_syspath(u, udev_list_entry_get_name(entry));
        if (!d) continue;
        UdevDevice x;
        x.subsystem = subsystem;
        x.sysname = or_empty(udev_device_get_sysname(d));
        x.syspath = or_empty(udev_device_get_syspath(d));
        x.devtype = or_empty(udev_device_get_devtype(d));
        if (const char* n = udev_device_get_sysattr_value(d, "dev")) x.devnum = n;
        if (udev_device* p = udev_device_get_parent_with_subsystem_devtype(d, "pci", nullptr)) x.pci_parent = or_empty(udev_device_get_sysname(p));
        out[x.sysname] = x;
        udev_device_unref(d);
    }
    udev_enumerate_unref(e);
    udev_unref(u);
    return out;
}

TEST(DevicesLive, SysfsPciEnumerationMatchesLibudev) {
    const UdevSnapshot lib = kvmready::host::enumerate_udev();
    const UdevSnapshot own = kvmready::host::enumerate_sysfs_live();
    ASSERT_TRUE(lib.available) << lib.error;
    EXPECT_EQ(own.error, "");
    EXPECT_EQ(own.source, "sysfs");
    const auto a = by_key(lib, "pci"), b = by_key(own, "pci");
    if (a.empty()) GTEST_SKIP() << "this machine has no PCI devices (a microVM): nothing to compare";
    // A udev daemon's database adds properties (hwdb names, rules) that
    // sysfs cannot give: compared only where there is none.
    const bool database = ::access("/run/udev/data", F_OK) == 0;
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, x] : a) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(b.count(name));
        const UdevDevice& y = b.at(name);
        EXPECT_EQ(y.syspath, x.syspath);
        EXPECT_EQ(y.driver, x.driver);
        EXPECT_EQ(y.devtype, x.devtype);
        EXPECT_EQ(y.pci_parent, x.pci_parent);
        if (!database) {
            EXPECT_EQ(y.properties, x.properties);
        } else {
            for (const auto& [k, v] : y.properties) EXPECT_EQ(x.properties.count(k) ? x.properties.at(k) : "<absent>", v) << k;
        }
    }
}

TEST(DevicesLive, ClassLinksMatchLibudevForBlockAndNetDevices) {
    const UdevSnapshot own = kvmready::host::enumerate_sysfs_live();
    size_t compared = 0;
    for (const char* subsystem : {"block", "net"}) {
        const auto ref = libudev_devices(subsystem);
        const auto got = by_key(own, subsystem);
        // Devices come and go (loop devices, veths of other tests): compare
        // those both saw, and require that most were seen by both.
        std::set<std::string> both;
        for (const auto& [name, x] : ref)
            if (got.count(name)) both.insert(name);
        EXPECT_GE(both.size() * 10, ref.size() * 9) << subsystem << ": libudev lists " << ref.size() << ", kvmready " << got.size();
        for (const auto& name : both) {
            SCOPED_TRACE(std::string(subsystem) + " " + name);
            const UdevDevice &x = ref.at(name), &y = got.at(name);
            EXPECT_EQ(y.syspath, x.syspath);
            EXPECT_EQ(y.pci_parent, x.pci_parent);
            if (std::string(subsystem) == "block") {
                EXPECT_EQ(y.devtype, x.devtype);
                EXPECT_EQ(y.devnum, x.devnum);
            }
            ++compared;
        }
    }
    EXPECT_GT(compared, 0u) << "neither block nor network devices to compare (lo is always there)";
}

// On a tree with bridges: the guest's libudev named each device's PCI
// parent; the path rule kvmready uses must name the same one.
TEST(DevicesLive, PciParentFromThePathMatchesLibudevOnARecordedQ35Tree) {
    const fs::path bundle = fs::path(KVMREADY_SOURCE_DIR) / "tests/bundles/devices-q35-iommu.tar.gz";
    const auto opened = kvmready::report::open_bundle(bundle.string());
    const nlohmann::json host = nlohmann::json::parse(std::ifstream(fs::path(opened->host_tree()) / ".kvmready/host.json"));
    const UdevSnapshot recorded = host.at("udev").get<UdevSnapshot>();
    ASSERT_EQ(recorded.source, "libudev");
    size_t behind_bridge = 0;
    for (const auto& d : recorded.devices) {
        SCOPED_TRACE(d.syspath);
        const std::string path = d.subsystem == "pci" ? d.syspath.substr(0, d.syspath.rfind('/')) : d.syspath;
        EXPECT_EQ(kvmready::host::pci_device_in_path(path), d.pci_parent);
        if (d.subsystem == "pci" && !d.pci_parent.empty()) ++behind_bridge;
    }
    EXPECT_GE(behind_bridge, 3u) << "the recording should hold devices behind root ports and a PCIe-to-PCI bridge";
}

}  // namespace
