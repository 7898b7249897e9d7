// The guest -> host serial protocol (docs: smoke-protocol.md): one report per
// line, `KVMREADY <stage> <ok|fail> [key=value ...]`, every other line
// ignored. Shared by ladder steps (b) QEMU directly and (c)/(d) libvirt.
//
//   SerialLog        raw bytes in (any chunking), complete reports out, and
//                    the last 4 KiB of everything for the report.
//   StageTracker     the stage model: which stages a guest must pass, in
//                    order, with the host's own expectations (the nonce it
//                    wrote, the MAC it gave), turned into SmokeStage rows.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smoke/report.hpp"

namespace kvmready::smoke {

// One `KVMREADY ...` line as the guest sent it.
struct SerialReport {
    std::string stage;                          // boot, cpu, disk, nic, net, done, ...
    bool ok = false;
    std::map<std::string, std::string> values;  // key=value tokens; a bare token maps to ""
};

// Parses one line (trailing CR/LF tolerated). Firmware may leave bytes before
// the report on the same row (SeaBIOS's "Booting from ROM..", an escape
// sequence), so the marker is found anywhere in the line; the first one that
// parses counts. nullopt: not a report.
std::optional<SerialReport> parse_serial_line(std::string_view line);

class SerialLog {
public:
    explicit SerialLog(size_t tail_bytes = 4096) : tail_max_(tail_bytes) {}
    // Appends raw console bytes; returns the reports the chunk completed.
    // A line without its '\n' yet waits for the next chunk.
    std::vector<SerialReport> feed(std::string_view bytes);
    // The last tail_bytes of everything fed (what the report keeps).
    const std::string& tail() const { return tail_; }
    size_t bytes_seen() const { return seen_; }

private:
    size_t tail_max_;
    std::string tail_;
    std::string partial_;
    size_t seen_ = 0;
};

// Stages a guest reports, in order. `done` is always last.
std::vector<std::string> builtin_guest_stages();   // boot cpu disk nic done
std::vector<std::string> linux_guest_stages();     // boot cpu disk nic net done

class StageTracker {
public:
    // `required`: the stages that must pass, in order (see above).
    explicit StageTracker(std::vector<std::string> required);
    // The host's side of a stage: the guest's value of `key` must equal
    // `value` (the nonce written, the MAC given) or the stage fails.
    void expect(const std::string& stage, const std::string& key, const std::string& value);

    // Records a report received `at_ms` after the guest was started. The
    // first report of a stage counts; repeats are ignored.
    void on_report(const SerialReport& r, double at_ms);

    bool first_marker_seen() const { return first_marker_ms_ >= 0; }
    double first_marker_ms() const { return first_marker_ms_; }  // -1: none
    double last_report_ms() const { return last_ms_; }
    const std::string& last_stage() const { return last_stage_; }  // "" before the first report
    bool done() const { return done_; }         // `done` arrived (ok or fail)
    bool failed() const;                        // some stage failed (guest or host expectation)
    bool passed() const;                        // every required stage passed, done ok
    // The first failed stage, for the message; nullptr when none failed.
    const SmokeStage* first_failure() const;
    // "wrong_nonce", "wrong_mac" (host expectation not met) or "guest_failure".
    std::string failure_class() const;

    // Rows for the report: every stage received, in arrival order, then the
    // required ones never reached, as "not_reached".
    std::vector<SmokeStage> stages() const;

private:
    struct Expectation {
        std::string stage, key, value;
    };
    std::vector<std::string> required_;
    std::vector<Expectation> expectations_;
    std::vector<SmokeStage> received_;
    std::map<std::string, std::string> host_failures_;  // stage -> failure class
    double first_marker_ms_ = -1;
    double last_ms_ = 0;
    std::string last_stage_;
    bool done_ = false;
};

}  // namespace kvmready::smoke
