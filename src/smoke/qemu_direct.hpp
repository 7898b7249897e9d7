// Ladder step (b): the builtin guest under qemu-system-x86_64 directly, no
// libvirt. A throwaway raw disk holding a fresh nonce, a user-mode NIC that
// lets no traffic out (restrict=on), the serial console on a pipe we parse
// as it arrives, -no-reboot, and a hard deadline after which the process
// group is killed. Everything lives in a private temporary directory that is
// removed before returning.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "host/target.hpp"
#include "smoke/report.hpp"

namespace kvmready::smoke {

struct QemuDirectConfig {
    std::string qemu = "qemu-system-x86_64";  // searched in PATH unless it has a '/'
    std::string guest;                // the ELF to boot; "" = builtin_guest_path()
    std::string accel = "tcg";        // "kvm" or "tcg"
    // "microvm": virtio-mmio, no firmware to speak of: tens of ms.
    // "pc": what libvirt uses; SeaBIOS, transitional virtio-pci devices.
    std::string machine = "microvm";
    bool acpi = true;                 // microvm only; off: QEMU lists the virtio-mmio devices on the command line
    bool disk = true;                 // attach the nonce disk
    bool nic = true;                  // attach the NIC
    // Tests: what sector 0 holds instead of the nonce line (the host still
    // expects the nonce it generated).
    std::optional<std::string> sector0;
    std::string append;               // kernel command line
    int memory_mib = 32;
    int timeout_ms = 10000;           // QEMU start -> `done`
    int first_marker_ms = 0;          // >0: give up earlier when no marker came by then
    std::string tmp_parent;           // default $TMPDIR, else /tmp
    std::vector<std::string> extra_args;  // appended to QEMU's argv
    std::function<bool()> cancelled;  // polled every few ms; true = kill QEMU, clean up, return
    // What the run directory, disk image and QEMU go through (nullptr: the
    // live system); tests record them instead.
    host::Target* target = nullptr;
};

// Never throws for host problems: they are in the step. id "b", name
// "qemu-direct". Stages' at_ms count from QEMU's spawn; split.boot_ms is the
// time to the first marker. details: machine, argv, qemu_exit, qemu_stderr,
// nonce, mac.
SmokeStep run_qemu_direct(const QemuDirectConfig& cfg);

// The QEMU argv run_qemu_direct() runs for this guest file, disk image and
// MAC (also in the step's details["argv"]), for messages and --keep hints.
std::vector<std::string> qemu_direct_argv(const QemuDirectConfig& cfg, const std::string& guest, const std::string& disk_path,
                                          const std::string& mac);

}  // namespace kvmready::smoke
