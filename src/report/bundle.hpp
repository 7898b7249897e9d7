// Support bundles: one .tar.gz holding a recorded host tree (everything the
// probe read, replayable with `check --from`), the facts, the results as JSON
// and text, and a manifest (tool version, command line, what was redacted).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

// Writes atomically (temporary file beside `out`, renamed into place).
// Refuses to replace an existing file unless force. Returns bytes written.
// Throws ExitError (64 exists, 73 cannot create).
uint64_t write_bundle(BundleContents c, const std::string& out, bool force);

// An opened bundle: extracted into a private temporary directory that is
// removed when this object goes away.
class OpenedBundle {
public:
    ~OpenedBundle();
    OpenedBundle(const OpenedBundle&) = delete;
    OpenedBundle& operator=(const OpenedBundle&) = delete;
    [[nodiscard]] const std::string& host_tree() const { return host_tree_; }
    [[nodiscard]] const nlohmann::json& manifest() const { return manifest_; }

private:
    friend std::unique_ptr<OpenedBundle> open_bundle(const std::string& path);
    OpenedBundle() = default;
    std::string tmp_;        // extraction dir we own (empty for an unpacked dir)
    std::string host_tree_;
    nlohmann::json manifest_;
};

// Accepts a .tar.gz bundle or an unpacked bundle directory. Throws
// NoInputError (66) when missing, DataError (65) when corrupt, truncated,
// unsafe (absolute paths, .., links, devices) or not a kvmready bundle.
std::unique_ptr<OpenedBundle> open_bundle(const std::string& path);

}  // namespace kvmready::report
