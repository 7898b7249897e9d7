// Host::identity(): the stable id a fleet report tells hosts apart by, even
// when two of them share a hostname.
#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "host/host.hpp"
#include "util/sha256.hpp"

namespace kvmready::host {

namespace {

// Fixed for kvmready: the same machine gives the same id in every report,
// and the id cannot be matched against another tool's hash of machine-id.
constexpr const char* kSalt = "kvmready-host-id/1:";

// Sources in order of preference. machine-id is systemd's and dbus's
// per-installation id; the DMI UUID is per board (root only, often a placeholder).
constexpr const char* kSources[] = {"/etc/machine-id", "/var/lib/dbus/machine-id", "/sys/class/dmi/id/product_uuid"};

std::string normalised(const std::string& raw) {
    std::string v;
    for (const char c : raw)
        if (!std::isspace(static_cast<unsigned char>(c))) v.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return v;
}

bool all_hex(const std::string& v) { return std::all_of(v.begin(), v.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }); }

// A UUID firmware left unset: all zeros, all ones, or one digit repeated.
bool placeholder_uuid(const std::string& v) {
    std::string digits;
    for (const char c : v)
        if (c != '-') digits.push_back(c);
    return digits.empty() || std::all_of(digits.begin(), digits.end(), [&](char c) { return c == digits[0]; }) ||
           digits == "03000200040005000006000700080009";  // a common vendor filler (Supermicro, AMI)
}

}  // namespace

std::optional<HostIdentity> identity_from(const std::string& source, const std::string& raw) {
    const std::string v = normalised(raw);
    const bool uuid = source.find("product_uuid") != std::string::npos;
    if (uuid) {
        std::string digits = v;
        std::erase(digits, '-');
        if (v.size() != 36 || digits.size() != 32 || !all_hex(digits) || placeholder_uuid(v)) return std::nullopt;
    } else if (v.size() != 32 || !all_hex(v) || v == std::string(32, '0')) {
        return std::nullopt;  // "uninitialized" (first boot), empty, or not an id
    }
    return HostIdentity{util::sha256_hex(kSalt + v).substr(0, 16), source, ""};
}

HostIdentity Host::identity() const {
    std::vector<std::string> why;
    for (const char* path : kSources) {
        int err = 0;
        const auto text = read_file(path, &err);
        if (!text) {
            why.push_back(fmt::format("{}: {}", path, err ? std::strerror(err) : "not readable"));
            continue;
        }
        if (auto id = identity_from(path, *text)) return *id;
        why.push_back(fmt::format("{}: not a usable id", path));
    }
    HostIdentity none;
    for (const auto& w : why) none.error += (none.error.empty() ? "" : "; ") + w;
    return none;
}

}  // namespace kvmready::host
