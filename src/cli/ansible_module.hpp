// kvmready ansible-module: kvmready speaking Ansible's binary-module protocol
// (one JSON argument file in, one JSON object out), so the collection's
// modules (ansible/ansible_collections/kvmready/host) are two-line shell
// scripts and the managed host needs no Python for them. Each module runs
// the matching kvmready command (this same binary, --json) and translates its
// answer: the module is exactly the CLI, never a second implementation.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/process.hpp"

namespace kvmready::cli::ansible {

// The arguments Ansible passed, validated against one module's parameters.
class Args {
public:
    Args(nlohmann::json j, const std::string& module);
    [[nodiscard]] bool check_mode() const { return j_.value("_ansible_check_mode", false); }
    [[nodiscard]] bool diff_mode() const { return j_.value("_ansible_diff", false); }
    // A string parameter (absent: dflt); a failure naming it when not a string
    // or not one of `choices` (when given).
    [[nodiscard]] std::string str(const std::string& name, const std::string& dflt, const std::vector<std::string>& choices = {}) const;
    // A list of strings; a comma-separated string is accepted as Ansible does.
    [[nodiscard]] std::vector<std::string> list(const std::string& name) const;
    [[nodiscard]] bool boolean(const std::string& name, bool dflt) const;
    [[nodiscard]] bool has(const std::string& name) const { return j_.contains(name) && !j_.at(name).is_null(); }

private:
    nlohmann::json j_;
};

// A parameter Ansible's user got wrong: the module fails with this message.
struct ParamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The user whose access to judge and fix: the `user` parameter, else under
// become the user Ansible logged in as (SUDO_USER), else "" (kvmready's
// default, the invoking user).
std::string subject_user(const Args& a);

// Runs this kvmready binary with args (argv[0] added).
host::RunResult run_self(const std::vector<std::string>& args, int timeout_ms);
// A --json command's stdout, or a ParamError-like failure message naming the
// command, its exit code and stderr.
nlohmann::json parse_json_output(const host::RunResult& r, const std::string& what);

// The modules: each returns the result object Ansible reads.
nlohmann::json module_check(const Args& a);
nlohmann::json module_fix(const Args& a);
nlohmann::json module_smoke(const Args& a);
nlohmann::json module_bundle(const Args& a);

// The parameter names each module accepts (others are refused, like
// Ansible's own argument_spec does).
const std::vector<std::string>& module_params(const std::string& module);

}  // namespace kvmready::cli::ansible
