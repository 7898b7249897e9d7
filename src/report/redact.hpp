// Redaction for support bundles: identifying values (hostname, IP and MAC
// addresses, user names, UUIDs/serials) become stable tokens — the same value
// always maps to the same token across every file of a bundle — chosen so
// the redacted files still parse and judge the same (documentation-range
// addresses, locally administered MACs, valid host and user names).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::report {

class Redactor {
public:
    // Values known up front (found by the probe); addresses and UUIDs are
    // also found by pattern in every text.
    void add_hostname(const std::string& name);
    void add_user(const std::string& name);

    [[nodiscard]] std::string apply(const std::string& text);

    // kind -> number of distinct values replaced, and the tokens used (never
    // the original values): goes into the bundle's manifest.
    [[nodiscard]] nlohmann::ordered_json summary() const;

private:
    std::string token_for(const std::string& kind, const std::string& value);
    std::string replace_words(const std::string& text, const std::map<std::string, std::string>& words);
    std::string replace_ipv4(const std::string& text);
    std::string replace_ipv6(const std::string& text);
    std::string replace_macs(const std::string& text);
    std::string replace_uuids(const std::string& text);

    std::map<std::string, std::string> hostnames_;  // value -> token
    std::map<std::string, std::string> users_;
    std::map<std::string, std::map<std::string, std::string>> by_kind_;  // kind -> value -> token
};

}  // namespace kvmready::report
