// The smoke test's result: a ladder of steps (a: KVM ioctl guest, b: QEMU
// directly, c: libvirt, d: Linux guest), each with the guest's stages as the
// host saw them arrive on the serial console, and a verdict that names the
// layer that failed. Rendered as text or JSON (schema in kvmready(1), SMOKE).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/facts_smoke.hpp"

namespace kvmready::smoke {

// One `KVMREADY <stage> <ok|fail> k=v...` report, or a stage the guest
// never reached. Names differ from the serial parser's own types on purpose:
// both headers live in one namespace.
struct SmokeStage {
    std::string name;                 // boot, cpu, disk, nic, net, done
    std::string status;               // "pass", "fail", "not_reached"
    double at_ms = 0;                 // since the guest was started
    double ms = 0;                    // since the previous stage (or the start)
    std::string detail;               // why it failed, or what it proved
    std::map<std::string, std::string> values;  // the guest's key=value pairs
};

// Where the time went, host side.
struct SmokeSplit {
    double prepare_ms = 0;            // connect, pool, volume, nonce, run dir
    double start_ms = 0;              // virDomainCreateXML (define + start)
    double boot_ms = -1;              // start -> first marker (-1: none)
    double stages_ms = -1;            // first marker -> last stage
    double teardown_ms = 0;           // destroy, delete volume, remove run dir
};

struct SmokeStep {
    std::string id;                   // "a", "b", "c", "d"
    std::string name;                 // "kvm-ioctl", "qemu-direct", "libvirt", "linux"
    std::string accel;                // "kvm", "tcg"
    bool ran = false;
    bool passed = false;
    // Failure class: "", "prerequisite", "not_permitted", "start_failed",
    // "kvm_internal_error", "no_serial_output", "stalled_before_first_marker",
    // "guest_failure", "timeout", "interrupted", "wrong_nonce", "wrong_mac",
    // "daemon_lost" (libvirt's keepalive gave up on a hung daemon mid-run).
    std::string failure;
    std::string message;              // one sentence
    double elapsed_ms = 0;
    SmokeSplit split;
    std::vector<SmokeStage> stages;
    std::string last_stage;           // last stage reached (empty: none)
    std::string serial_tail;          // last 4 KiB of the serial log (failures)
    std::string qemu_log_tail;        // libvirt's QEMU log for the domain, when readable
    nlohmann::ordered_json details = nlohmann::ordered_json::object();  // names, paths, URIs
};

struct SmokeReport {
    bool passed = false;
    int exit_code = 1;
    std::string verdict;              // one sentence
    std::string diagnosis;            // the differential diagnosis, when one was made
    std::string accel_requested;      // kvm, tcg, auto
    std::string accel_used;           // the accelerator of the deciding step
    double total_ms = 0;              // command start -> verdict printed (cleanup done)
    double verdict_ms = 0;            // command start -> outcome known (teardown excluded)
    std::vector<SmokeStep> steps;
    std::vector<std::string> kept;    // --keep: what was left
    std::vector<std::string> cleanup_commands;  // --keep: how to remove it
};

// SmokeFacts (what `check --full` keeps in Facts) is core data: core/facts_smoke.hpp.
using kvmready::SmokeFacts;

SmokeFacts summarize(const SmokeReport& r, const std::string& uri);

nlohmann::ordered_json to_json(const SmokeReport& r);
std::string render_text(const SmokeReport& r, bool color);

// Exit code for a finished report (see SmokeReport::exit_code).
int smoke_exit_code(const SmokeReport& r);

}  // namespace kvmready::smoke
