// Runs `kvmready check --json` inside a real Linux guest with a real KVM host
// stack: Debian's cloud kernel booted under QEMU TCG (software emulation, so
// it works wherever qemu-system-x86_64 is installed, without /dev/kvm).
//
//  - `-cpu EPYC`: TCG emulates AMD SVM, so the guest's kvm + kvm_amd modules
//    load and /dev/kvm works for real (KVM_RUN executes on the emulated SVM).
//  - `-cpu Skylake-Server`: TCG cannot emulate VMX and masks it, so kvm_intel
//    refuses to load and there is no /dev/kvm.
//
// The guest (kernel, initramfs, init, console parsing) is the harness of
// support/guest_vm.hpp; it skips with a reason when QEMU or the guest kernel
// (scripts/fetch-guest-kernel.sh) is missing.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/guest_vm.hpp"

namespace {

using nlohmann::json;
using namespace kvmready::testsupport;

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Every string in `j` (recursively, values only) that contains `needle`.
void strings_containing(const json& j, const std::string& needle, std::vector<std::string>& out) {
    if (j.is_string()) {
        if (j.get<std::string>().find(needle) != std::string::npos) out.push_back(j.get<std::string>());
    } else if (j.is_structured()) {
        for (const auto& v : j) strings_containing(v, needle, out);
    }
}

// Every object in `j` (recursively) that has a string value equal to `needle`.
void objects_naming(const json& j, const std::string& needle, std::vector<const json*>& out) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items())
            if (v.is_string() && v.get<std::string>() == needle) {
                out.push_back(&j);
                break;
            }
    }
    if (j.is_structured())
        for (const auto& v : j) objects_naming(v, needle, out);
}

bool mentions_builtin(const std::string& s) {
    std::string l = lower(s);
    return l.find("built-in") != std::string::npos || l.find("builtin") != std::string::npos ||
           l.find("built in") != std::string::npos;
}

class GuestKernelTest : public GuestVmTest {};

TEST_F(GuestKernelTest, AmdSvmGuestIsARealKvmHost) {
    GuestRun g = boot("EPYC", {"msr", "kvm", "kvm_amd"}, {"check", "--json"});
    ASSERT_TRUE(g.have_block);

    // The guest kernel itself says the AMD KVM stack came up.
    for (const char* m : {"irqbypass", "kvm", "kvm_amd"}) {
        const ModuleLoad* ml = g.module(m);
        ASSERT_NE(ml, nullptr) << "no load line for " << m;
        EXPECT_EQ(ml->result, "ok") << m << " failed to load: " << ml->errno_name;
    }

    json report = parse_report(g);
    ASSERT_TRUE(report.is_object());
    EXPECT_EQ(report.value("schema_version", 0), 1);

    const json* cpu = find_check(report, "cpu.virt-extensions");
    EXPECT_EQ(status_of(cpu), "pass");
    if (cpu) {
        const json ev = cpu->value("evidence", json::object());
        if (ev.is_object() && ev.contains("svm") && ev["svm"].is_boolean()) {
            EXPECT_TRUE(ev["svm"].get<bool>()) << "cpu.virt-extensions evidence: " << ev.dump();
        } else {
            std::vector<std::string> hits;
            strings_containing(ev, "svm", hits);
            strings_containing(ev, "SVM", hits);
            EXPECT_FALSE(hits.empty()) << "cpu.virt-extensions evidence does not mention SVM: " << ev.dump();
        }
    }

    // kvm_amd is named, as a module loaded from a .ko, never as built in.
    const json* mod = find_check(report, "kvm.module");
    EXPECT_EQ(status_of(mod), "pass");
    if (mod) {
        const json ev = mod->value("evidence", json::object());
        std::vector<std::string> named;
        strings_containing(ev, "kvm_amd", named);
        EXPECT_FALSE(named.empty()) << "kvm.module evidence does not name kvm_amd: " << ev.dump();
        for (const auto& n : named) EXPECT_FALSE(mentions_builtin(n)) << "kvm_amd reported built in: " << n;
        std::vector<const json*> objs;
        objects_naming(ev, "kvm_amd", objs);
        for (const json* o : objs)
            for (const char* key : {"builtin", "built_in"})
                if (o->contains(key)) {
                    EXPECT_EQ((*o)[key], false) << o->dump();
                }
        EXPECT_FALSE(mentions_builtin(mod->value("message", ""))) << mod->value("message", "");
        // Where the report lists the modules installed for the kernel
        // (loadable from /lib/modules), kvm_amd must be among them.
        if (ev.is_object() && ev.contains("installed_for_kernel") && ev["installed_for_kernel"].is_array()) {
            const auto& inst = ev["installed_for_kernel"];
            EXPECT_NE(std::find(inst.begin(), inst.end(), json("kvm_amd")), inst.end()) << inst.dump();
        }
    }

    EXPECT_EQ(status_of(find_check(report, "kvm.device")), "pass");
    EXPECT_EQ(status_of(find_check(report, "kvm.api")), "pass");

    std::string verdict = report.value("verdict", "");
    EXPECT_TRUE(verdict == "ready" || verdict == "ready_with_warnings") << "verdict " << verdict;
    ASSERT_TRUE(g.exit_code.has_value());
    EXPECT_NE(*g.exit_code, 1) << "exit code says not ready";
    EXPECT_NE(*g.exit_code, 3) << "exit code says undetermined";
    if (verdict == "ready") {
        EXPECT_EQ(*g.exit_code, 0);
    }
}

TEST_F(GuestKernelTest, IntelWithoutVmxGuestIsNotReady) {
    GuestRun g = boot("Skylake-Server", {"msr", "kvm", "kvm_intel"}, {"check", "--json"});
    ASSERT_TRUE(g.have_block);

    const ModuleLoad* kvm = g.module("kvm");
    ASSERT_NE(kvm, nullptr);
    EXPECT_EQ(kvm->result, "ok") << "kvm itself should load: " << kvm->errno_name;
    const ModuleLoad* intel = g.module("kvm_intel");
    ASSERT_NE(intel, nullptr) << "no load line for kvm_intel";
    EXPECT_EQ(intel->result, "error") << "kvm_intel loaded on a CPU without VMX?";
    // 6.1 says "kvm: no hardware support for 'kvm_intel'" and returns EOPNOTSUPP.
    EXPECT_FALSE(intel->errno_name.empty());

    json report = parse_report(g);
    ASSERT_TRUE(report.is_object());

    EXPECT_EQ(status_of(find_check(report, "cpu.virt-extensions")), "fail");
    EXPECT_EQ(status_of(find_check(report, "kvm.device")), "fail");
    // kvm.module quotes the kernel's refusal (read from /dev/kmsg), and
    // nothing advises a device node: no module registered a device.
    const json* mod = find_check(report, "kvm.module");
    EXPECT_EQ(status_of(mod), "fail");
    if (mod) {
        // 6.1: "kvm: no hardware support for 'kvm_intel'"; newer kernels
        // also "kvm_intel: VMX not supported by CPU 0".
        const json lines = mod->value("evidence", json::object()).value("kernel_log", json::array());
        bool quoted = false;
        for (const auto& l : lines) {
            const std::string t = l.is_string() ? lower(l.get<std::string>()) : "";
            if (t.find("no hardware support for 'kvm_intel'") != std::string::npos || t.find("vmx not supported") != std::string::npos) {
                quoted = true;
                EXPECT_NE(mod->value("message", "").find(l.get<std::string>()), std::string::npos) << mod->dump();
            }
        }
        EXPECT_TRUE(quoted) << "kvm.module does not quote the kernel's refusal: " << mod->dump();
    }
    EXPECT_EQ(report.dump().find("mknod"), std::string::npos) << "advises mknod without a registered KVM device";
    EXPECT_NE(status_of(find_check(report, "kvm.api")), "pass");
    EXPECT_EQ(report.value("verdict", ""), "not_ready");
    ASSERT_TRUE(g.exit_code.has_value());
    EXPECT_EQ(*g.exit_code, 1);
}

}  // namespace
