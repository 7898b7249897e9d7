// SHA-256 (FIPS 180-4), for identifiers derived from values that must not
// travel themselves (a host's machine-id). Not for secrets at rest.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace kvmready::util {

std::array<uint8_t, 32> sha256(const std::string& data);
// Lower-case hex of the digest.
std::string sha256_hex(const std::string& data);

}  // namespace kvmready::util
