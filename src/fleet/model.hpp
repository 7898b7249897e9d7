// The fleet as one value: every host's latest report, judged together. Built
// from loaded reports (load.hpp) and an inventory; rendered as HTML
// (html.cpp) and JSON (fleet_json.cpp). No I/O here, and the clock is passed in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fleet/load.hpp"

namespace kvmready::fleet {

// A check that did not pass on a host (fail, warn, unknown, error), as its report said.
struct HostFinding {
    std::string id, title, level, status, message;
    std::string fix_text;               // remediation.text
    std::vector<std::string> commands;  // remediation.commands
    std::string fix_id;                 // `kvmready fix` can repair it when set
};

struct FleetHost {
    std::string key;          // what tells it apart: "id:HASH", or "hostname:NAME" without an id
    std::string id;           // host.id, "" when the report had none
    std::string id_reason;    // why there is none
    std::string hostname, kernel;
    std::string verdict, verdict_text;
    std::string path, source; // the report it comes from ("json" or "bundle")
    std::string when;         // run.recorded_at, else run.started; "" when the report has neither
    std::optional<int64_t> when_unix;
    bool stale = false;       // older than the stale limit, or of unknown age
    bool in_inventory = true; // false: an inventory was given and does not name it
    std::map<std::string, std::string> status;  // check id -> status
    std::vector<HostFinding> findings;          // the checks that did not pass or skip
    std::vector<std::string> superseded;        // older reports of the same host (paths)
};

// One way to fix a failing check, and on how many hosts its report gave it.
struct FixVariant {
    std::string text;
    std::vector<std::string> commands;
    std::string fix_id;
    int hosts = 0;
};

struct RankedCheck {
    std::string id, title, level;
    std::vector<std::string> hosts;  // hostnames where it failed, sorted
    int warned = 0;                  // hosts where it warned
    std::vector<FixVariant> fixes;   // most hosts first
};

struct Unreadable {
    std::string path, source, error;
};

struct Fleet {
    int64_t generated_unix = 0;
    int64_t stale_after_seconds = 0;
    std::vector<FleetHost> hosts;                // by hostname, then id
    std::vector<std::string> check_ids;          // the matrix's columns, in report order
    std::map<std::string, std::string> check_titles;
    std::vector<std::pair<std::string, int>> verdicts;  // verdict -> hosts, readiest first
    std::vector<RankedCheck> ranked;             // failing checks, most hosts blocked first
    bool inventory_given = false;
    std::vector<std::string> missing;            // inventory hosts without a report
    std::vector<Unreadable> unreadable;
    [[nodiscard]] int stale_count() const;
    // Every host has a fresh report saying it can run guests, the inventory
    // is covered and every input was readable: exit 0.
    [[nodiscard]] bool all_ready() const;
};

// Whether a verdict means the host can run KVM guests.
bool ready_verdict(const std::string& verdict);

// "2026-12-07T19:00:00Z" (also with fractions or an offset) -> seconds since the epoch.
std::optional<int64_t> parse_rfc3339(const std::string& s);

Fleet build_fleet(const std::vector<LoadedReport>& reports, const std::optional<std::vector<std::string>>& inventory, int64_t now_unix,
                  int64_t stale_after_seconds);

}  // namespace kvmready::fleet
