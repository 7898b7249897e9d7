// devices.passthrough and devices.vfio-bind in a real guest kernel: Debian's
// cloud kernel under QEMU TCG on a q35 machine with a virtual Intel IOMMU
// (interrupt remapping on) and several PCI devices:
//   pcie-root-port rp1 -> nvme (1b36:0010), alone in its IOMMU group
//   pcie-root-port rp2 -> pcie-pci-bridge -> virtio-net + vmxnet3: one group
//     (conventional PCI behind a bridge cannot be told apart by the IOMMU)
// The kernel's own word on the groups (its "Adding to iommu group N" log
// lines) is compared with kvmready's evidence; the real vfio-pci module takes
// the NVMe controller (fix --apply), gives it back (fix --undo), and refuses
// half a group. A second boot without a virtual IOMMU gets the "no IOMMU"
// diagnosis. Three short boots (init gets at most 31 words of commands).
#include <map>
#include <regex>

#include "support/guest_vm.hpp"

namespace kvmready::testsupport {
namespace {

using json = nlohmann::json;

constexpr const char* kNvme = "1b36:0010";
constexpr const char* kVmxnet3 = "15ad:07b0";

const std::vector<std::string> kDevices = {
    "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
    "-blockdev", "driver=null-co,node-name=nv0,size=67108864",
    "-device", "nvme,serial=kvmready0,drive=nv0,bus=rp1",
    "-device", "pcie-root-port,id=rp2,chassis=2,slot=2",
    "-device", "pcie-pci-bridge,id=br1,bus=rp2",
    "-device", "virtio-net-pci,bus=br1,addr=1",
    "-device", "vmxnet3,bus=br1,addr=2",
};
const std::vector<std::string> kModules = {"virtio_pci", "virtio_net", "vmxnet3", "vfio_iommu_type1", "vfio_pci"};

const json* device_with_id(const json* check, const std::string& id) {
    // Pointers into *check itself: value() would return a copy that dies here.
    if (!check || !check->contains("evidence") || !(*check)["evidence"].contains("devices")) return nullptr;
    for (const auto& d : (*check)["evidence"]["devices"])
        if (d.value("id", "") == id) return &d;
    return nullptr;
}

// BDF -> group, as the kernel logged it when it added each device.
std::map<std::string, int> kernel_groups(const std::string& console) {
    std::map<std::string, int> out;
    static const std::regex re(R"(pci (\S+): Adding to iommu group (\d+))");
    for (std::sregex_iterator it(console.begin(), console.end(), re), end; it != end; ++it) out[(*it)[1]] = std::stoi((*it)[2]);
    return out;
}

class DevicesGuest : public GuestVmTest {
protected:
    GuestSpec q35(bool iommu) {
        GuestSpec s;
        s.cpu = "Skylake-Server";
        s.machine = iommu ? "q35,kernel-irqchip=split" : "q35";
        s.qemu_args = kDevices;
        if (iommu) {
            s.qemu_args.insert(s.qemu_args.begin(), {"-device", "intel-iommu,intremap=on"});
            s.kernel_args = "intel_iommu=on";
        }
        s.modules = kModules;
        return s;
    }
    const json* passthrough(const json& report) { return find_check(report, "devices.passthrough"); }
};

// The kernel hands init at most 31 words after "--" (MAX_INIT_ARGS), so the
// IOMMU machine boots twice: the inventory and its refusals, then the bind.
TEST_F(DevicesGuest, IommuGroupsAndViabilityInARealKernel) {
    GuestSpec spec = q35(true);
    spec.dmesg = true;
    spec.commands = {{"check", "devices", "--json", "--record", "/tmp/rec"},
                     {"check", "devices", "--json", "--root", "/tmp/rec"},
                     {"fix", "--device", kVmxnet3, "--json"},
                     {"check", "devices", "--device", kVmxnet3, "--json"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), spec.commands.size());
    for (const char* m : {"vfio_pci", "vmxnet3"}) {
        const ModuleLoad* l = g.module(m);
        ASSERT_TRUE(l && l->result == "ok") << m << " did not load in the guest";
    }

    // 1. The inventory, against the kernel's own groups.
    const json all = parse_json(g.commands[0]);
    const json* c = passthrough(all);
    ASSERT_NE(c, nullptr);
    report_text_ = c->dump(2);
    EXPECT_EQ(status_of(c), "pass") << c->dump(2);
    const json& ev = (*c)["evidence"];
    // The guest runs no udev daemon, so there is no database for libudev to
    // add to sysfs: kvmready reads sysfs itself (DevicesLive holds the two equal).
    EXPECT_EQ(ev.value("enumeration", ""), "sysfs");
    EXPECT_EQ(ev["interrupt_remapping"], true) << "intremap=on: /proc/interrupts must show IR- chips";
    EXPECT_EQ(ev["vfio_modules"].value("vfio_pci", ""), "loaded");
    const auto kernel = kernel_groups(g.console);
    ASSERT_FALSE(kernel.empty()) << "the kernel logged no iommu group additions";
    size_t compared = 0;
    for (const auto& d : ev["devices"]) {
        auto it = kernel.find(d.value("bdf", ""));
        ASSERT_NE(it, kernel.end()) << d.dump() << " is in no group the kernel logged";
        EXPECT_EQ(d["iommu_group"], it->second) << d.dump();
        ++compared;
    }
    EXPECT_GE(compared, 3u);
    const json* nvme = device_with_id(c, kNvme);
    const json* vmx = device_with_id(c, kVmxnet3);
    ASSERT_TRUE(nvme && vmx) << ev.dump(2);
    EXPECT_EQ(nvme->value("driver", ""), "nvme");
    EXPECT_TRUE(nvme->value("group_shared_with", json::array()).empty()) << "the NVMe sits alone on its root port";
    EXPECT_EQ(nvme->value("assignable", false), true) << nvme->dump(2);
    EXPECT_EQ(nvme->value("bound_to_vfio", true), false);
    EXPECT_EQ(vmx->value("group_shared_with", json::array()).size(), 1u) << "vmxnet3 shares its group with virtio-net: " << vmx->dump(2);
    EXPECT_NE((*nvme)["iommu_group"], (*vmx)["iommu_group"]);

    // 2. What the probe read, recorded and replayed, judges alike.
    const json replay = parse_json(g.commands[1]);
    const json* rc = passthrough(replay);
    ASSERT_NE(rc, nullptr);
    json live_ev = ev, replay_ev = (*rc)["evidence"];
    EXPECT_EQ(replay_ev.value("enumeration", ""), "recorded");
    live_ev.erase("enumeration");
    replay_ev.erase("enumeration");
    EXPECT_EQ(live_ev, replay_ev);
    EXPECT_EQ(c->value("message", ""), rc->value("message", ""));

    // 3. Half a group is refused, with the member to add.
    EXPECT_NE(g.commands[2].exit_code, 0);
    const std::string refusal = g.commands[2].stdout_text + g.commands[2].stderr_text;
    EXPECT_NE(refusal.find("assign both or neither"), std::string::npos) << refusal;
    const json shared = parse_json(g.commands[3]);
    const json* sc = passthrough(shared);
    EXPECT_NE(sc ? sc->value("message", "").find("assign both or neither") : std::string::npos, std::string::npos)
        << (sc ? sc->dump(2) : shared.dump());
}

TEST_F(DevicesGuest, TheBindFixMovesTheNvmeToVfioAndBack) {
    GuestSpec spec = q35(true);
    spec.commands = {{"fix", "--device", kNvme, "--apply", "--yes", "--json"},
                     {"check", "devices", "--device", kNvme, "--json"},
                     {"fix", "--undo", "--json"},
                     {"check", "devices", "--device", kNvme, "--json"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), spec.commands.size());

    // 1. fix --apply: the real vfio-pci takes the controller.
    const json apply = parse_json(g.commands[0]);
    EXPECT_EQ(g.commands[0].exit_code, 0) << g.commands[0].stdout_text << g.commands[0].stderr_text;
    const std::string applied = apply.dump();
    report_text_ = apply.dump(2);
    EXPECT_NE(applied.find("61-kvmready-vfio.rules"), std::string::npos) << applied;
    EXPECT_NE(applied.find("softdep nvme pre: vfio-pci"), std::string::npos) << applied;
    const json bound = parse_json(g.commands[1]);
    const json* after = device_with_id(passthrough(bound), kNvme);
    ASSERT_NE(after, nullptr) << bound.dump(2);
    EXPECT_EQ(after->value("driver", ""), "vfio-pci") << after->dump(2);
    EXPECT_EQ(after->value("bound_to_vfio", false), true);
    EXPECT_EQ(status_of(passthrough(bound)), "pass");
    EXPECT_NE(passthrough(bound)->value("message", "").find("bound to vfio-pci and ready"), std::string::npos)
        << passthrough(bound)->dump(2);

    // 2. fix --undo: back to nvme.
    EXPECT_EQ(g.commands[2].exit_code, 0) << g.commands[2].stdout_text << g.commands[2].stderr_text;
    const json back = parse_json(g.commands[3]);
    const json* restored = device_with_id(passthrough(back), kNvme);
    ASSERT_NE(restored, nullptr);
    EXPECT_EQ(restored->value("driver", ""), "nvme") << restored->dump(2);
}

TEST_F(DevicesGuest, WithoutAVirtualIommuTheNoIommuDiagnosis) {
    GuestSpec spec = q35(false);
    spec.commands = {{"check", "devices", "--json"}, {"fix", "--device", kNvme, "--json"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), 2u);
    const json r = parse_json(g.commands[0]);
    const json* c = passthrough(r);
    ASSERT_NE(c, nullptr);
    report_text_ = c->dump(2);
    EXPECT_EQ(status_of(c), "warn");
    const std::string msg = c->value("message", "");
    EXPECT_NE(msg.find("no IOMMU groups"), std::string::npos) << msg;
    EXPECT_NE(msg.find("DMAR"), std::string::npos) << "an Intel guest without VT-d: no DMAR table: " << msg;
    EXPECT_NE(c->dump().find("intel-iommu"), std::string::npos) << "the remedy names the virtual IOMMU to add";
    const json* nvme = device_with_id(c, kNvme);
    ASSERT_NE(nvme, nullptr);
    EXPECT_EQ(nvme->value("assignable", true), false);
    EXPECT_TRUE((*nvme)["iommu_group"].is_null());
    // And the fix refuses: VFIO cannot take a device without a group.
    EXPECT_NE(g.commands[1].exit_code, 0);
    EXPECT_NE((g.commands[1].stdout_text + g.commands[1].stderr_text).find("no IOMMU"), std::string::npos)
        << g.commands[1].stdout_text << g.commands[1].stderr_text;
}

}  // namespace
}  // namespace kvmready::testsupport
