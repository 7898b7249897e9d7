// Real Linux guests for tests: Debian's cloud kernel booted under QEMU TCG
// (software emulation, so it works wherever qemu-system-x86_64 is installed,
// without /dev/kvm), with a throwaway initramfs built per boot by
// tests/guest/mkinitramfs.sh around the static init of tests/guest/init.c,
// which loads the listed modules, runs kvmready (one or more commands) and
// prints each command's output between KVMREADY-GUEST-BEGIN and
// KVMREADY-GUEST-END on the serial console.
//
//  - `-cpu EPYC`: TCG emulates AMD SVM, so the guest's kvm + kvm_amd modules
//    load and /dev/kvm works for real (KVM_RUN executes on the emulated SVM).
//  - `-cpu Skylake-Server`: TCG cannot emulate VMX and masks it, so kvm_intel
//    refuses to load and there is no /dev/kvm.
//
// Needs: qemu-system-x86_64 and the guest kernel, fetched by
// scripts/fetch-guest-kernel.sh into ${KVMREADY_CACHE:-/var/cache/kvmready}/
// guest-kernel (or point KVMREADY_GUEST_KERNEL at a directory laid out like
// its `current`). GuestVmTest skips with a reason when either is missing.
// Used by guest_kernel_test.cpp and guest_kvm_absent_test.cpp (check) and
// fix_guest_test.cpp (fix).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kvmready::testsupport {

struct ModuleLoad {
    std::string result;  // "ok" or "error"
    std::string errno_name;
};

// One command's KVMREADY-GUEST-BEGIN..END block.
struct GuestCommand {
    std::string stdout_text;
    std::optional<int> exit_code;
    bool timed_out = false;
    std::string stderr_text;
};

struct GuestRun {
    std::string console;                      // whole serial console, \r removed
    std::string qemu_log;
    double qemu_seconds = 0;
    bool qemu_timed_out = false;
    int qemu_exit = -1;
    std::vector<std::pair<std::string, ModuleLoad>> modules;  // in load order
    std::vector<std::pair<std::string, ModuleLoad>> unlinks;  // GuestSpec::unlink, by path (same result shape)
    std::vector<GuestCommand> commands;       // in order
    // The first command's block (the usual single-command boot).
    bool have_block = false;                  // BEGIN..END markers found
    std::string stdout_text;
    std::optional<int> exit_code;
    bool command_timed_out = false;
    std::string stderr_text;

    [[nodiscard]] const ModuleLoad* module(const std::string& name) const;
};

void parse_console(GuestRun& g);

// What to boot. Module names may carry finit_module parameters:
// "kvm_amd:nested=0".
struct GuestSpec {
    std::string cpu = "EPYC";
    std::vector<std::string> modules;     // loaded by init at boot, dependencies first
    std::vector<std::string> pack_only;   // under /lib/modules for modprobe, not loaded
    std::vector<std::string> adds;        // mkinitramfs --add SRC=DEST
    bool depmod = false;                  // modules.dep + .bin indexes for modprobe
    // Paths init unlinks after loading the modules, before the commands
    // (kvmready.unlink=): e.g. /dev/kvm, to leave KVM registered without a node.
    std::vector<std::string> unlink;
    bool dmesg = false;                   // print the whole kernel log at the end (kvmready.dmesg=1)
    // kvmready.late_wait=: once the first command has made this file, init
    // loads the modules of /modules.late (put there with `adds`, packed with
    // `pack_only`), waits for the file to be replaced and SIGTERMs the command.
    std::string late_wait;
    // The machine and its devices: -machine MACHINE ("" QEMU's default),
    // extra QEMU arguments after the defaults (-device ...), and extra words
    // on the guest kernel's command line (intel_iommu=on).
    std::string machine;
    std::vector<std::string> qemu_args;
    std::string kernel_args;
    // kvmready's arguments, one list per command, run in order in one boot.
    std::vector<std::vector<std::string>> commands;
};

std::string env_or(const char* name, const std::string& dflt);
// Where scripts/fetch-guest-kernel.sh leaves the guest kernel (vmlinuz,
// release, lib/modules): $KVMREADY_GUEST_KERNEL, else
// ${KVMREADY_CACHE:-/var/cache/kvmready}/guest-kernel/current.
std::filesystem::path guest_kernel_dir();
std::optional<std::string> find_in_path(const std::string& prog);
std::string read_text(const std::filesystem::path& p);
std::string tail_lines(const std::string& text, size_t n);

const nlohmann::json* find_check(const nlohmann::json& report, const std::string& id);
std::string status_of(const nlohmann::json* check);

class GuestVmTest : public ::testing::Test {
protected:
    std::filesystem::path kernel_dir_, vmlinuz_, modules_dir_, qemu_, init_, mkinitramfs_;
    std::filesystem::path tmp_;
    GuestRun last_;
    bool ran_ = false;
    std::string report_text_;  // printed when a test fails

    void SetUp() override;
    void TearDown() override;

    GuestRun boot(const GuestSpec& spec);
    // Boots with `cpu`, loading `modules` (and their dependencies), and runs
    // /kvmready with `args` in it.
    GuestRun boot(const std::string& cpu, const std::vector<std::string>& modules, const std::vector<std::string>& args) {
        GuestSpec s;
        s.cpu = cpu;
        s.modules = modules;
        s.commands = {args};
        return boot(s);
    }
    // A command's stdout as JSON (a test failure, and null, when it is not).
    nlohmann::json parse_json(const GuestCommand& c);
    nlohmann::json parse_report(const GuestRun& g) {
        return parse_json(GuestCommand{g.stdout_text, g.exit_code, g.command_timed_out, g.stderr_text});
    }
};

}  // namespace kvmready::testsupport
