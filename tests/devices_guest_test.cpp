// devices.passthrough and devices.vfio-bind in a real guest kernel: Debian's
// cloud kernel under QEMU TCG on a q35 machine with a virtual Intel IOMMU
// (interrupt remapping on) and several PCI devices:
//   pcie-root-port rp1 -> nvme (1b36:0010), alone in its IOMMU group
//   pcie-root-port rp2 -> pcie-pci-bridge -> virtio-net + vmxnet3: one group
//     (conventional PCI behind a bridge cannot be told apart by the IOMMU)
// The kernel's own word on the groups (its "Adding to iommu group N" log
// lines) is compared with kvmready's evidence; the real vfio-pci module takes
// the NVMe controller (fix --apply), gives it back (fix --undo), and refuses
// half a group. A boot without a virtual IOMMU gets the "no IOMMU" diagnosis
// from iommu.enabled, and devices.passthrough says it is not applicable. A
// fourth boot, `-cpu EPYC` with AMD's virtual IOMMU, checks the diagnosis of
// an IOMMU the firmware describes (ACPI IVRS) and the kernel cannot drive
// (Debian's cloud kernel is built without CONFIG_AMD_IOMMU). Every boot packs
// the kernel's build configuration at /boot/config-RELEASE, as a Debian host
// has it. Four short boots (init gets at most 31 words of commands).
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

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

std::string file_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

class DevicesGuest : public GuestVmTest {
protected:
    std::string release_;
    std::filesystem::path config_;  // the guest kernel's /boot/config-RELEASE, on this host

    void SetUp() override {
        GuestVmTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        release_ = file_text(kernel_dir_ / "release");
        while (!release_.empty() && std::isspace(static_cast<unsigned char>(release_.back()))) release_.pop_back();
        config_ = kernel_dir_ / "boot" / ("config-" + release_);
        if (!std::filesystem::exists(config_)) GTEST_SKIP() << config_ << " is missing: re-run scripts/fetch-guest-kernel.sh";
    }
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
        s.adds = {config_.string() + "=/boot/config-" + release_};
        return s;
    }
    // How the guest kernel was built: "y", "m", or "n" (not set).
    std::string guest_config(const std::string& option) {
        std::smatch m;
        const std::string text = file_text(config_);
        if (std::regex_search(text, m, std::regex("\n" + option + "=(\\w+)"))) return m[1];
        return "n";
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

// Without any IOMMU, iommu.enabled says why and what to do, once:
// devices.passthrough is not applicable (its device list stays), unless
// asked about a device; selected alone it still counts as a warning.
TEST_F(DevicesGuest, WithoutAVirtualIommuTheNoIommuDiagnosis) {
    GuestSpec spec = q35(false);
    spec.commands = {{"check", "iommu", "devices", "--json"},
                     {"check", "devices", "--device", kNvme, "--json"},
                     {"check", "devices", "--json"},
                     {"fix", "--device", kNvme, "--json"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), spec.commands.size());
    const json r = parse_json(g.commands[0]);
    const json* io = find_check(r, "iommu.enabled");
    const json* c = passthrough(r);
    ASSERT_TRUE(io && c) << r.dump(2);
    report_text_ = r.dump(2);
    EXPECT_EQ(status_of(io), "warn");
    const std::string msg = io->value("message", "");
    EXPECT_NE(msg.find("no virtual IOMMU"), std::string::npos) << msg;
    EXPECT_NE(msg.find("DMAR"), std::string::npos) << "an Intel guest without VT-d: no DMAR table: " << msg;
    EXPECT_NE(io->dump().find("intel-iommu"), std::string::npos) << "the remedy names the virtual IOMMU to add";
    EXPECT_EQ(status_of(c), "skip") << c->dump(2);
    const std::string skip = c->value("message", "");
    EXPECT_NE(skip.find("not applicable: this host has no IOMMU"), std::string::npos) << skip;
    EXPECT_NE(skip.find("iommu.enabled"), std::string::npos) << skip;
    const json* nvme = device_with_id(c, kNvme);
    ASSERT_NE(nvme, nullptr);
    EXPECT_EQ(nvme->value("assignable", true), false);
    EXPECT_TRUE((*nvme)["iommu_group"].is_null());

    // Asked about the NVMe controller: the answer is about it, with the remedy.
    const json one = parse_json(g.commands[1]);
    const json* oc = passthrough(one);
    ASSERT_NE(oc, nullptr);
    EXPECT_EQ(status_of(oc), "warn");
    const std::string om = oc->value("message", "");
    EXPECT_NE(om.find("(1b36:0010) cannot be assigned to a guest: no IOMMU groups"), std::string::npos) << om;
    EXPECT_NE(om.find("DMAR"), std::string::npos) << om;
    EXPECT_NE(oc->dump().find("intel-iommu"), std::string::npos);

    // Selected alone, the skip carries iommu.enabled's warning into the verdict.
    const json alone = parse_json(g.commands[2]);
    EXPECT_EQ(status_of(passthrough(alone)), "skip");
    EXPECT_EQ(alone.value("verdict", ""), "passed_with_warnings") << alone.dump(2);

    // And the fix refuses: VFIO cannot take a device without a group.
    EXPECT_NE(g.commands[3].exit_code, 0);
    EXPECT_NE((g.commands[3].stdout_text + g.commands[3].stderr_text).find("no IOMMU"), std::string::npos)
        << g.commands[3].stdout_text << g.commands[3].stderr_text;
}

// AMD's virtual IOMMU (QEMU's amd-iommu: an ACPI IVRS table) under a kernel
// built without CONFIG_AMD_IOMMU: the firmware describes an IOMMU, the
// kernel has no driver for it, so there are no groups. The advice is another
// kernel, not the firmware setup; recorded and replayed, it reads the same.
TEST_F(DevicesGuest, AmdIommuTheKernelCannotDrive) {
    GuestSpec spec = q35(false);
    spec.cpu = "EPYC";
    spec.qemu_args.insert(spec.qemu_args.begin(), {"-device", "amd-iommu,intremap=on"});
    spec.dmesg = true;
    spec.commands = {{"check", "iommu", "devices", "--json", "--record", "/tmp/rec"},
                     {"check", "iommu", "devices", "--json", "--root", "/tmp/rec"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), spec.commands.size()) << g.qemu_log;
    // The kernel's own word: it mapped an IVRS table.
    EXPECT_NE(g.console.find("ACPI: IVRS"), std::string::npos) << "QEMU's amd-iommu gave no IVRS table";
    const json r = parse_json(g.commands[0]);
    const json* io = find_check(r, "iommu.enabled");
    const json* c = passthrough(r);
    ASSERT_TRUE(io && c) << r.dump(2);
    report_text_ = r.dump(2);
    EXPECT_EQ((*io)["evidence"]["acpi_ivrs"], true);

    if (guest_config("CONFIG_AMD_IOMMU") != "n") {
        // A kernel with the driver: AMD-Vi comes up, groups exist.
        EXPECT_EQ(status_of(io), "pass") << io->dump(2);
        EXPECT_NE(io->value("message", "").find("AMD-Vi is on"), std::string::npos);
        return;
    }
    EXPECT_EQ(kernel_groups(g.console).size(), 0u) << "no driver, yet the kernel made groups";
    EXPECT_EQ(status_of(io), "warn");
    const std::string msg = io->value("message", "");
    EXPECT_NE(msg.find("the firmware describes AMD-Vi (ACPI IVRS table) but the running kernel has no driver for it"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find(release_ + " is built without CONFIG_AMD_IOMMU (/boot/config-" + release_ + ")"), std::string::npos) << msg;
    EXPECT_NE(msg.find("so there are no IOMMU groups"), std::string::npos) << msg;
    EXPECT_EQ((*io)["evidence"]["iommu_groups"], 0);
    EXPECT_EQ((*io)["evidence"]["kernel_config"]["CONFIG_AMD_IOMMU"], "n");
    const json& rem = (*io)["remediation"];
    const std::string advice = rem.value("text", "");
    EXPECT_NE(advice.find("Boot a kernel built with CONFIG_AMD_IOMMU"), std::string::npos) << advice;
    if (release_.find("-cloud") != std::string::npos) {
        EXPECT_NE(advice.find("linux-image-amd64 rather than this -cloud flavour"), std::string::npos) << advice;
    }
    EXPECT_EQ(advice.find("firmware"), std::string::npos) << "no firmware setting helps: " << advice;
    EXPECT_EQ(advice.find("BIOS"), std::string::npos) << advice;
    EXPECT_NE(rem.dump().find("linux-image-amd64"), std::string::npos) << rem.dump();

    // devices.passthrough: an IOMMU exists, so this is no "not applicable".
    EXPECT_EQ(status_of(c), "warn") << c->dump(2);
    EXPECT_NE(c->value("message", "").find("no PCI device can be assigned to a guest: no IOMMU groups (the firmware describes AMD-Vi"),
              std::string::npos)
        << c->value("message", "");
    EXPECT_EQ((*c)["remediation"], rem);
    const json* nvme = device_with_id(c, kNvme);
    ASSERT_NE(nvme, nullptr) << c->dump(2);
    EXPECT_TRUE((*nvme)["iommu_group"].is_null());
    EXPECT_EQ(nvme->value("driver", ""), "nvme");

    // The recording carries the kernel configuration: the replay says the same.
    const json replay = parse_json(g.commands[1]);
    for (const char* id : {"iommu.enabled", "devices.passthrough"}) {
        const json* live = find_check(r, id);
        const json* again = find_check(replay, id);
        ASSERT_TRUE(live && again) << id;
        EXPECT_EQ(live->value("message", ""), again->value("message", "")) << id;
        EXPECT_EQ((*live)["remediation"], (*again)["remediation"]) << id;
    }
    EXPECT_EQ((*find_check(replay, "iommu.enabled"))["evidence"], (*io)["evidence"]);
}

}  // namespace
}  // namespace kvmready::testsupport
