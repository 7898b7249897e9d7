// A directory of the test's own under /tmp, removed with everything in it
// when the test ends (pass, fail or skip).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace kvmready::testsupport {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& prefix = "kvmready-test", const std::filesystem::path& base = "/tmp") {
        std::string t = (base / (prefix + "-XXXXXX")).string();
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp " + t + " failed");
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

}  // namespace kvmready::testsupport
