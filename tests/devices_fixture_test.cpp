// devices.passthrough replayed from a support bundle recorded in a real guest
// kernel (tests/fixtures/record-guest-devices.sh: q35, virtual Intel IOMMU
// with interrupt remapping, an NVMe controller alone on a root port,
// virtio-net and vmxnet3 behind a PCIe-to-PCI bridge, vfio-pci loaded):
// `check --from` must judge the devices the guest's libudev enumerated.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/spawn.hpp"

namespace kvmready::testsupport {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kBundle = fs::path(KVMREADY_SOURCE_DIR) / "tests/bundles/devices-q35-iommu.tar.gz";

json check(const std::vector<std::string>& args, int* exit_code = nullptr) {
    std::vector<std::string> argv = {KVMREADY_BINARY, "check", "devices", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const Captured r = run_captured(argv, 30000);
    if (exit_code) *exit_code = r.exit_code;
    EXPECT_TRUE(r.started) << r.spawn_error;
    try {
        return json::parse(r.out);
    } catch (const json::exception& e) {
        ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.out << r.err;
        return json();
    }
}

// Both helpers return pointers into their argument: value(key, default)
// would iterate a copy that dies before the caller reads it.
const json* passthrough(const json& report) {
    if (!report.is_object() || !report.contains("checks")) return nullptr;
    for (const auto& c : report["checks"])
        if (c.value("id", "") == "devices.passthrough") return &c;
    return nullptr;
}

const json* device(const json* c, const std::string& id) {
    if (!c || !c->contains("evidence") || !(*c)["evidence"].contains("devices")) return nullptr;
    for (const auto& d : (*c)["evidence"]["devices"])
        if (d.value("id", "") == id) return &d;
    return nullptr;
}

// The bundle is recorded once by tests/fixtures/record-guest-devices.sh and
// committed; until it is, these tests say so instead of passing.
#define REQUIRE_BUNDLE()                                                                                 \
    if (!fs::exists(kBundle))                                                                            \
    GTEST_SKIP() << kBundle << " is not recorded yet: run tests/fixtures/record-guest-devices.sh"

TEST(DevicesFixture, BundleFromAGuestReplaysGroupsAndVerdicts) {
    REQUIRE_BUNDLE();
    const json r = check({"--from", kBundle.string()});
    const json* c = passthrough(r);
    ASSERT_NE(c, nullptr) << r.dump();
    EXPECT_EQ(c->value("status", ""), "pass") << c->dump(2);
    const json& ev = (*c)["evidence"];
    EXPECT_EQ(ev.value("enumeration", ""), "recorded");
    EXPECT_EQ(ev["interrupt_remapping"], true);
    EXPECT_EQ(ev["vfio_modules"].value("vfio_pci", ""), "loaded");
    const json* nvme = device(c, "1b36:0010");
    const json* vmx = device(c, "15ad:07b0");
    ASSERT_TRUE(nvme && vmx) << ev.dump(2);
    EXPECT_EQ(nvme->value("driver", ""), "nvme");
    EXPECT_TRUE((*nvme)["group_shared_with"].empty());
    EXPECT_TRUE(nvme->value("assignable", false));
    ASSERT_EQ((*vmx)["group_shared_with"].size(), 1u);
    const json* partner = nullptr;
    for (const auto& d : ev["devices"])
        if (d.value("bdf", "") == (*vmx)["group_shared_with"][0]) partner = &d;
    ASSERT_NE(partner, nullptr);
    EXPECT_EQ(partner->value("id", "").substr(0, 5), "1af4:") << "virtio-net shares the bridge's group";
    EXPECT_EQ((*partner)["iommu_group"], (*vmx)["iommu_group"]);
}

TEST(DevicesFixture, DeviceSelectorOnTheReplay) {
    REQUIRE_BUNDLE();
    int rc = -1;
    const json one = check({"--from", kBundle.string(), "--device", "15ad:07b0"}, &rc);
    const json* c = passthrough(one);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ((*c)["evidence"]["devices"].size(), 1u);
    EXPECT_NE(c->value("message", "").find("assign both or neither"), std::string::npos) << c->dump(2);
    EXPECT_NE(c->value("message", "").find("assignable once bound to vfio-pci"), std::string::npos) << c->dump(2);
    const json none = check({"--from", kBundle.string(), "--device", "0000:7f:00.0"}, &rc);
    const json* n = passthrough(none);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->value("status", ""), "fail");
    EXPECT_NE(n->value("message", "").find("no PCI device matches --device 0000:7f:00.0"), std::string::npos);
}

}  // namespace
}  // namespace kvmready::testsupport
