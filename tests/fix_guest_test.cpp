// The runtime halves of `kvmready fix` that this machine cannot exercise (its
// KVM is the built-in kvm_pvm), done for real inside a guest whose kernel has
// a genuine kvm_amd: Debian's cloud kernel under QEMU TCG with -cpu EPYC (TCG
// emulates SVM), harness in support/guest_vm.hpp. The guest gets the host's
// kmod as /usr/sbin/modprobe and a depmod'ed /lib/modules, so kvmready's
// `modprobe` steps run the real program against the real kernel.
//
// Each test is one boot running several kvmready commands in a row (init's
// ";;"): the fix, a check of the result, the undo, a check of the result.
// The state directory is the default /var/lib/kvmready on the initramfs'
// tmpfs root. Skips with a reason without QEMU or the guest kernel.
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/guest_vm.hpp"

namespace {

using nlohmann::json;
using namespace kvmready::testsupport;

// kmod picks its personality from argv[0].
const char* const kModprobe = "/usr/bin/kmod=/usr/sbin/modprobe";
const char* const kRmmod = "/usr/bin/kmod=/usr/sbin/rmmod";

// The step of an apply/undo report whose summary contains `needle`.
const json* step_named(const json& out, const std::string& needle) {
    if (!out.contains("steps") || !out["steps"].is_array()) return nullptr;
    for (const auto& s : out["steps"])
        if (s.value("summary", "").find(needle) != std::string::npos) return &s;
    return nullptr;
}

const json* changed(const json& out, const std::string& id) {
    if (!out.contains("changed_checks") || !out["changed_checks"].is_array()) return nullptr;
    for (const auto& c : out["changed_checks"])
        if (c.value("id", "") == id) return &c;
    return nullptr;
}

std::string step_status(const json* s) { return s ? s->value("status", "<none>") : "<missing>"; }

// An apply/undo report that says ok, with each named step done.
void expect_done(const json& out, const GuestCommand& c, std::initializer_list<const char*> steps) {
    EXPECT_EQ(out.value("ok", false), true) << c.stderr_text;
    for (const char* s : steps) EXPECT_EQ(step_status(step_named(out, s)), "done") << s << ": " << out.dump();
}

std::string nested_param(const json& report) {
    const json* n = find_check(report, "kvm.nested");
    if (!n || !n->contains("evidence")) return "<missing>";
    return (*n)["evidence"].value("nested", "<missing>");
}

class FixGuestTest : public GuestVmTest {
protected:
    // kvm.modules-load with `preload` loaded at boot and kvm_amd only on disk:
    // the fix must modprobe it (for real), write /etc/modules-load.d/kvm.conf,
    // and the re-check must see kvm.module (and /dev/kvm, the API) go from
    // fail to pass. Undo unloads what the fix loaded and removes the file.
    // Returns the last check's kvm.module finding.
    json modules_load_round_trip(const std::vector<std::string>& preload) {
        GuestSpec spec;
        spec.modules = preload;
        spec.pack_only = {"kvm_amd"};
        spec.adds = {kModprobe, kRmmod};
        spec.depmod = true;
        spec.commands = {{"fix", "--apply", "--only", "kvm.modules-load", "--json"},
                         {"check", "--json"},
                         {"fix", "--undo", "--json"},
                         {"check", "--json"}};
        GuestRun g = boot(spec);
        EXPECT_EQ(g.commands.size(), 4u);
        if (g.commands.size() != 4) return json();
        EXPECT_EQ(g.module("kvm_amd"), nullptr) << "init loaded kvm_amd; it must only be packed";

        json apply = parse_json(g.commands[0]);
        EXPECT_EQ(apply.value("mode", ""), "apply");
        expect_done(apply, g.commands[0], {"load kvm_amd now", "/etc/modules-load.d/kvm.conf"});
        EXPECT_EQ(g.commands[0].exit_code, 0);
        const json* mod = changed(apply, "kvm.module");
        EXPECT_NE(mod, nullptr) << "kvm.module did not change: " << apply.dump();
        if (mod) {
            EXPECT_EQ(mod->value("before", ""), "fail");
            EXPECT_EQ(mod->value("after", ""), "pass");
            EXPECT_NE(mod->value("message", "").find("kvm_amd"), std::string::npos) << mod->dump();
        }
        for (const char* id : {"kvm.device", "kvm.api"}) {
            const json* c = changed(apply, id);
            EXPECT_NE(c, nullptr) << id << " did not change: " << apply.dump();
            if (c) {
                EXPECT_EQ(c->value("after", ""), "pass") << c->dump();
            }
        }
        EXPECT_TRUE(apply.value("still_failing", json::array()).empty()) << apply.dump();

        json after = parse_json(g.commands[1]);
        EXPECT_EQ(status_of(find_check(after, "kvm.module")), "pass");
        EXPECT_EQ(status_of(find_check(after, "kvm.api")), "pass");

        json undo = parse_json(g.commands[2]);
        expect_done(undo, g.commands[2], {"load kvm_amd now", "/etc/modules-load.d/kvm.conf"});

        json back = parse_json(g.commands[3]);
        const json* m = find_check(back, "kvm.module");
        EXPECT_EQ(status_of(m), "fail");
        return m ? *m : json();
    }
};

// kvm loaded by someone else before; undo must keep it (only kvm_amd goes).
TEST_F(FixGuestTest, ModulesLoadLoadsKvmAmdInARealKernel) {
    json back = modules_load_round_trip({"msr", "kvm"});
    EXPECT_NE(back.value("message", "").find("kvm is present but no vendor module"), std::string::npos) << back.dump();
}

// Nothing loaded: modprobe pulls in kvm too, and undo takes both out.
TEST_F(FixGuestTest, ModulesLoadFromNothingAndBack) {
    json back = modules_load_round_trip({"msr"});
    EXPECT_EQ(back.value("message", ""), "no KVM module is loaded or built in") << back.dump();
}

// kvm.nested: kvm_amd loaded with nested=0 and unused. The fix (a 'confirm'
// one: --yes) writes /etc/modprobe.d/kvm-nested.conf and reloads kvm_amd with
// nested=1 (rmmod of kvm_amd alone, so kvm keeps its runtime settings, then
// modprobe); the parameter in sysfs then reads 1. Undo reloads it with
// nested=0 again.
TEST_F(FixGuestTest, NestedReloadsKvmAmdInARealKernel) {
    GuestSpec spec;
    spec.modules = {"msr", "kvm", "kvm_amd:nested=0"};
    spec.adds = {kModprobe, kRmmod};
    spec.depmod = true;
    spec.commands = {{"fix", "--apply", "--yes", "--only", "kvm.nested", "--json"},
                     {"check", "--json"},
                     {"fix", "--undo", "--json"},
                     {"check", "--json"}};
    GuestRun g = boot(spec);
    ASSERT_EQ(g.commands.size(), 4u);
    ASSERT_NE(g.module("kvm_amd"), nullptr);
    ASSERT_EQ(g.module("kvm_amd")->result, "ok") << g.module("kvm_amd")->errno_name;

    json apply = parse_json(g.commands[0]);
    ASSERT_TRUE(apply.is_object());
    expect_done(apply, g.commands[0], {"/etc/modprobe.d/kvm-nested.conf", "reload kvm_amd with nested=1"});
    EXPECT_EQ(g.commands[0].exit_code, 0);
    const json* n = changed(apply, "kvm.nested");
    ASSERT_NE(n, nullptr) << "kvm.nested did not change: " << apply.dump();
    EXPECT_EQ(n->value("before", ""), "warn");
    EXPECT_EQ(n->value("after", ""), "pass");
    EXPECT_NE(n->value("message", "").find("kvm_amd nested=1"), std::string::npos) << n->dump();
    // The reload took kvm_amd (and kvm) out and back: the rest still works.
    EXPECT_EQ(changed(apply, "kvm.module"), nullptr) << apply.dump();
    EXPECT_EQ(changed(apply, "kvm.api"), nullptr) << apply.dump();

    json after = parse_json(g.commands[1]);
    EXPECT_EQ(nested_param(after), "1") << "/sys/module/kvm_amd/parameters/nested";
    EXPECT_EQ(status_of(find_check(after, "kvm.nested")), "pass");
    EXPECT_EQ(status_of(find_check(after, "kvm.api")), "pass");

    json undo = parse_json(g.commands[2]);
    expect_done(undo, g.commands[2], {"reload kvm_amd", "kvm-nested.conf"});

    json back = parse_json(g.commands[3]);
    EXPECT_EQ(nested_param(back), "0");
    EXPECT_EQ(status_of(find_check(back, "kvm.nested")), "warn");
    EXPECT_EQ(status_of(find_check(back, "kvm.api")), "pass");
}

}  // namespace
