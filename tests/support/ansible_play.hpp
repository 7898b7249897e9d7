// Running the real ansible-playbook from tests (the kvmready.host collection
// in ansible/): an environment that keeps every bit of Ansible's state in the
// test's own directory, and the PLAY RECAP parsed. Used by
// tests/ansible_fleet_test.cpp (SSH guests) and tests/ansible_smoke_test.cpp
// (ansible_connection=local against a private libvirtd).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/spawn.hpp"

namespace kvmready::testsupport {

struct PlayRun {
    Captured c;
    double seconds = 0;
    // PLAY RECAP: host -> {"ok": n, "changed": n, "failed": n, ...}
    std::map<std::string, std::map<std::string, int>> recap;
};

std::map<std::string, std::map<std::string, int>> parse_recap(const std::string& out);

// The collection's root (ANSIBLE_COLLECTIONS_PATH): KVMREADY_SOURCE_DIR/ansible.
std::filesystem::path ansible_collections_dir();

// This process's environment without ANSIBLE_* and locale settings, plus the
// test's: the collection, Ansible's home, local temp directory and SSH
// control sockets under `dir`, no host key checking, pipelining, no colour,
// and `extra` (NAME=value) last.
std::vector<std::string> ansible_env(const std::filesystem::path& dir, const std::vector<std::string>& extra = {});

// `PREFIX... ansible-playbook -i INVENTORY PLAY EXTRA...` in `dir` with `env`;
// prints a one-line timing for the CTest log. prefix: e.g. nsenter into a
// test daemon's namespaces ({} for none).
PlayRun run_playbook(const std::vector<std::string>& prefix, const std::filesystem::path& inventory, const std::filesystem::path& play,
                     const std::vector<std::string>& extra, const std::filesystem::path& dir, const std::vector<std::string>& env,
                     int timeout_ms = 600 * 1000);

}  // namespace kvmready::testsupport
