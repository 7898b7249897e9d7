// `kvmready smoke`: the ladder (a) in-process KVM ioctl guest, (b) the
// builtin guest under QEMU directly, (c) a guest through libvirt with disk
// and NIC, (d) the Linux guest; --accel auto with the differential diagnosis
// (KVM boot fails, TCG boot works: KVM is the broken layer).
#pragma once

#include <string>

#include "core/options.hpp"
#include "host/target.hpp"
#include "smoke/report.hpp"

namespace kvmready::smoke {

// The shared request (connect_uri, network, bridge, pool; core/options.hpp)
// plus what only the smoke run takes.
struct SmokeOptions : Request {
    std::string accel = "auto";       // kvm, tcg, auto
    std::string guest = "builtin";    // builtin, linux
    std::string kernel;               // --kernel: the file to boot instead of the default
    std::string initrd;               // --initrd: instead of the generated initramfs
    std::string append;               // extra kernel command line
    int timeout_s = 30;
    bool keep = false;
    std::string run_dir_parent;       // default $TMPDIR or /var/tmp
    // What the run's files and processes go through (nullptr: the live
    // system); tests record them instead.
    host::Target* target = nullptr;
};

// SIGINT/SIGTERM set a flag the run polls (it then cleans up and returns);
// a second signal while cleaning up kills the process the default way.
void install_signal_handlers();
int interrupted_by();                 // the signal received, 0 if none

// Runs the ladder; never throws for host problems (they are in the report).
// Throws UsageError for options that cannot work together.
SmokeReport run_smoke(const SmokeOptions& o);

// `kvmready check --full`: the default smoke run (builtin guest, --accel
// auto) against the URI, network/bridge and pool being judged, summarised.
SmokeFacts smoke_for_check(const Request& request);

}  // namespace kvmready::smoke
