// Support bundles: one .tar.gz holding a recorded host tree (everything the
// probe read, replayable with `check --from`), the facts, the results as JSON
// and text, and a manifest (tool version, command line, what was redacted).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/target.hpp"

namespace kvmready::report {

constexpr const char* kBundleFormat = "kvmready-bundle/1";
constexpr const char* kBundleTop = "kvmready-report";

struct BundleContents {
    std::string tree_dir;                      // recorded host tree on disk
    std::vector<std::pair<std::string, std::string>> extra_files;  // name in bundle -> content
    nlohmann::ordered_json manifest;
    bool redact = true;
    std::vector<std::string> hostnames;        // values to redact besides patterns
    std::vector<std::string> users;
};

// Writes atomically (temporary file beside `out`, renamed into place),
// through the target (a RecordingTarget keeps the bytes instead). Refuses to
// replace an existing file unless force. Returns bytes written.
// Throws ExitError (64 exists, 73 cannot create).
uint64_t write_bundle(BundleContents c, const std::string& out, bool force, host::Target& target = host::live_target());

// What unpacking a bundle may cost, so that a hostile archive (member-count
// bombs, huge or deep members) is refused quickly (65). A real bundle holds a
// few hundred small files; `--bundle-limit NAME=N` raises one for a
// legitimately huge one. Documented in kvmready(1), LIMITS.
struct BundleLimits {
    uint64_t members = 10000;                 // entries in the archive
    uint64_t bytes = 256ull << 20;            // unpacked size of all members
    uint64_t member_bytes = 64ull << 20;      // one member
    uint64_t depth = 32;                      // directory levels below kvmready-report/
    uint64_t name_bytes = 1024;               // a member's whole name
    uint64_t seconds = 20;                    // wall time to unpack
};

// "members=50000" etc. onto limits; throws UsageError for an unknown name or
// a value that is not a positive number.
void set_bundle_limit(BundleLimits& limits, const std::string& name_eq_value);

// An opened bundle: extracted into a private temporary directory that is
// removed when this object goes away (both through the Target it was opened
// with, which must outlive it).
class OpenedBundle {
public:
    ~OpenedBundle();
    OpenedBundle(const OpenedBundle&) = delete;
    OpenedBundle& operator=(const OpenedBundle&) = delete;
    [[nodiscard]] const std::string& host_tree() const { return host_tree_; }
    [[nodiscard]] const nlohmann::json& manifest() const { return manifest_; }

private:
    friend std::unique_ptr<OpenedBundle> open_bundle(const std::string& path, const BundleLimits& limits, host::Target& target);
    explicit OpenedBundle(host::Target& target) : target_(target) {}
    host::Target& target_;
    std::string tmp_;        // extraction dir we own (empty for an unpacked dir)
    std::string host_tree_;
    nlohmann::json manifest_;
};

// Accepts a .tar.gz bundle or an unpacked bundle directory. Throws
// NoInputError (66) when missing, DataError (65) when corrupt, truncated,
// unsafe (absolute paths, .., links, devices) or not a kvmready bundle.
// The extraction (temp dir, directories, members, removal) goes through target.
std::unique_ptr<OpenedBundle> open_bundle(const std::string& path, const BundleLimits& limits = {},
                                          host::Target& target = host::live_target());

}  // namespace kvmready::report
