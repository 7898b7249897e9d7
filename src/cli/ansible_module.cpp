// kvmready ansible-module check|fix|smoke|bundle ARGS_FILE: the protocol
// side (argument file, parameter checks, one JSON object out) and the
// check, smoke and bundle modules; the fix module is in ansible_fix.cpp.
#include "cli/ansible_module.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "host/bounded_read.hpp"
#include "host/target.hpp"
#include "util/text.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli::ansible {

const std::vector<std::string>& module_params(const std::string& module) {
    static const std::vector<std::string> check{"fail_on", "checks", "user"};
    static const std::vector<std::string> fix{"state",  "confirm", "only", "run_id",    "user",   "connect",  "network",
                                              "pool",   "bridge",  "subnet", "pool_path", "uplink", "hugepages"};
    static const std::vector<std::string> smoke{"accel", "guest", "timeout", "connect", "network", "pool"};
    static const std::vector<std::string> bundle{"dest", "redact"};
    static const std::vector<std::string> none;
    if (module == "check") return check;
    if (module == "fix") return fix;
    if (module == "smoke") return smoke;
    if (module == "bundle") return bundle;
    return none;
}

Args::Args(nlohmann::json j, const std::string& module) : j_(std::move(j)) {
    if (!j_.is_object()) throw ParamError("the module arguments are not a JSON object");
    const auto& known = module_params(module);
    for (const auto& [k, v] : j_.items()) {
        // Ansible's own keys (_ansible_check_mode, _ansible_diff, ...).
        if (k.rfind("_ansible_", 0) == 0) continue;
        if (std::find(known.begin(), known.end(), k) == known.end())
            throw ParamError(fmt::format("Unsupported parameter for kvmready_{}: {} (supported: {})", module, k, fmt::join(known, ", ")));
    }
}

std::string Args::str(const std::string& name, const std::string& dflt, const std::vector<std::string>& choices) const {
    if (!has(name)) return dflt;
    const auto& v = j_.at(name);
    std::string s;
    if (v.is_string()) s = v.get<std::string>();
    else if (v.is_number_integer()) s = std::to_string(v.get<long long>());
    else throw ParamError(fmt::format("parameter {} must be a string", name));
    if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end())
        throw ParamError(fmt::format("parameter {} must be one of {}, got '{}'", name, fmt::join(choices, ", "), s));
    return s;
}

std::vector<std::string> Args::list(const std::string& name) const {
    std::vector<std::string> out;
    if (!has(name)) return out;
    const auto& v = j_.at(name);
    auto add_csv = [&out](const std::string& s) {
        std::stringstream ss(s);
        std::string w;
        while (std::getline(ss, w, ','))
            if (!util::trim(w).empty()) out.push_back(util::trim(w));
    };
    if (v.is_string()) add_csv(v.get<std::string>());
    else if (v.is_array()) {
        for (const auto& e : v) {
            if (!e.is_string()) throw ParamError(fmt::format("parameter {} must be a list of strings", name));
            add_csv(e.get<std::string>());
        }
    } else {
        throw ParamError(fmt::format("parameter {} must be a list of strings", name));
    }
    return out;
}

bool Args::boolean(const std::string& name, bool dflt) const {
    if (!has(name)) return dflt;
    const auto& v = j_.at(name);
    if (v.is_boolean()) return v.get<bool>();
    // Ansible's YAML-ish booleans when a value arrives as a string (k=v syntax).
    const std::string s = v.is_string() ? util::lower(v.get<std::string>()) : "";
    for (const char* t : {"yes", "true", "on", "1"})
        if (s == t) return true;
    for (const char* f : {"no", "false", "off", "0"})
        if (s == f) return false;
    throw ParamError(fmt::format("parameter {} must be a boolean", name));
}

std::string subject_user(const Args& a) {
    const std::string user = a.str("user", "");
    if (!user.empty()) return user;
    // `become: true` runs the module as root through sudo; the play still
    // means the SSH user, whom sudo names.
    const char* sudo_user = std::getenv("SUDO_USER");
    return sudo_user && *sudo_user && std::string(sudo_user) != "root" ? sudo_user : "";
}

host::RunResult run_self(const std::vector<std::string>& args, int timeout_ms) {
    std::vector<std::string> argv{"/proc/self/exe"};
    argv.insert(argv.end(), args.begin(), args.end());
    return host::live_target().run(argv, timeout_ms);
}

nlohmann::json parse_json_output(const host::RunResult& r, const std::string& what) {
    if (!r.started) throw ParamError(fmt::format("could not run {}: {}", what, r.error));
    if (r.timed_out) throw ParamError(fmt::format("{} did not finish in time", what));
    try {
        return nlohmann::json::parse(r.out);
    } catch (const nlohmann::json::exception&) {
        throw ParamError(fmt::format("{} exited {} without a JSON answer: {}", what, r.exit_code, util::trim(r.err)));
    }
}

namespace {

// The facts a play branches on: the verdict, what failed and warned, and
// which KVM module provides /dev/kvm (kvm_intel, kvm_amd, kvm_pvm; null when
// none is bound) with its nested setting, as the checks found them.
nlohmann::json facts_of(const nlohmann::json& report) {
    nlohmann::json failed = nlohmann::json::array(), warnings = nlohmann::json::array();
    nlohmann::json flavour, nested;
    for (const auto& c : report.value("checks", nlohmann::json::array())) {
        const std::string st = c.value("status", ""), id = c.value("id", "");
        if (st == "fail") failed.push_back(id);
        if (st == "warn") warnings.push_back(id);
        const nlohmann::json ev = c.contains("evidence") && c["evidence"].is_object() ? c["evidence"] : nlohmann::json::object();
        // kvm.module passes when a vendor module is loaded and bound to /dev/kvm.
        if (id == "kvm.module" && st == "pass")
            for (const auto& m : ev.value("present", nlohmann::json::array()))
                if (m == "kvm_intel" || m == "kvm_amd" || m == "kvm_pvm") flavour = m;
        if (id == "kvm.nested" && ev.contains("nested") && ev["nested"].is_string())
            nested = ev["nested"] == "1" || ev["nested"] == "Y" || ev["nested"] == "y";
    }
    return {{"verdict", report.value("verdict", "undetermined")},
            {"verdict_text", report.value("verdict_text", "")},
            {"failed", failed},
            {"warnings", warnings},
            {"kvm_flavour", flavour},
            {"nested", nested},
            {"hostname", report.contains("host") ? report["host"].value("hostname", "") : ""},
            {"summary", report.value("summary", nlohmann::json::object())}};
}

}  // namespace

nlohmann::json module_check(const Args& a) {
    const std::string fail_on = a.str("fail_on", "not_ready", {"not_ready", "warnings", "never"});
    std::vector<std::string> args{"check", "--json"};
    const std::string user = subject_user(a);
    if (!user.empty()) args.insert(args.end(), {"--user", user});
    for (const auto& c : a.list("checks")) args.push_back(c);
    const host::RunResult r = run_self(args, 300 * 1000);
    const nlohmann::json report = parse_json_output(r, "kvmready check");
    nlohmann::json facts = facts_of(report);
    const std::string verdict = facts["verdict"];
    bool failed = false;
    if (fail_on == "not_ready") failed = verdict != "ready" && verdict != "ready_with_warnings";
    if (fail_on == "warnings") failed = verdict != "ready";
    return {{"changed", false},
            {"failed", failed},
            {"msg", facts["verdict_text"]},
            {"rc", r.exit_code},
            {"report", report},
            {"ansible_facts", {{"kvmready", facts}}}};
}

nlohmann::json module_smoke(const Args& a) {
    std::vector<std::string> args{"smoke", "--json"};
    const std::string accel = a.str("accel", "", {"", "auto", "kvm", "tcg"});
    const std::string guest = a.str("guest", "", {"", "builtin", "linux"});
    const std::string timeout = a.str("timeout", "");
    if (!accel.empty()) args.insert(args.end(), {"--accel", accel});
    if (!guest.empty()) args.insert(args.end(), {"--guest", guest});
    if (!timeout.empty()) args.insert(args.end(), {"--timeout", timeout});
    // Which libvirt, network and pool the throwaway VM uses (kvmready smoke's defaults otherwise).
    for (const auto& [param, flag] : std::vector<std::pair<std::string, std::string>>{{"connect", "--connect"}, {"network", "--network"}, {"pool", "--pool"}})
        if (const std::string v = a.str(param, ""); !v.empty()) args.insert(args.end(), {flag, v});
    // The smoke test creates and removes its own throwaway domain: it leaves
    // nothing behind, so it is not a change, and check mode may run it too.
    const host::RunResult r = run_self(args, 900 * 1000);
    const nlohmann::json result = parse_json_output(r, "kvmready smoke");
    // msg: the run's own one-line verdict (which step failed and why).
    std::string msg = result.contains("verdict") && result["verdict"].is_string() ? result["verdict"].get<std::string>() : "";
    if (msg.empty()) msg = r.exit_code == 0 ? std::string("the smoke test passed") : util::trim(r.err.empty() ? result.dump() : r.err);
    return {{"changed", false}, {"failed", r.exit_code != 0}, {"rc", r.exit_code}, {"msg", msg}, {"smoke", result}};
}

nlohmann::json module_bundle(const Args& a) {
    const std::string dest = a.str("dest", "/var/tmp/kvmready-report.tar.gz");
    if (dest.empty() || dest[0] != '/') throw ParamError(fmt::format("parameter dest must be an absolute path, got '{}'", dest));
    if (a.check_mode()) return {{"changed", true}, {"dest", dest}, {"msg", "check mode: the bundle would be written"}};
    std::vector<std::string> args{"report", "--output", dest, "--force"};
    if (!a.boolean("redact", true)) args.emplace_back("--no-redact");
    const host::RunResult r = run_self(args, 300 * 1000);
    if (!r.started || r.timed_out || r.exit_code != 0)
        return {{"changed", false}, {"failed", true}, {"rc", r.exit_code}, {"msg", fmt::format("kvmready report failed: {}", util::trim(r.err + r.error))}};
    return {{"changed", true}, {"dest", dest}, {"rc", 0}, {"msg", util::trim(r.err + r.out)}};
}

namespace {

nlohmann::json dispatch(const std::string& module, const std::string& args_file) {
    const std::string text = host::read_input_file(args_file, host::kMaxManifestBytes, "ansible-module " + args_file);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("{}: not a JSON arguments file: {}", args_file, e.what()));
    }
    const Args a(j, module);
    if (module == "check") return module_check(a);
    if (module == "fix") return module_fix(a);
    if (module == "smoke") return module_smoke(a);
    return module_bundle(a);
}

}  // namespace

}  // namespace kvmready::cli::ansible

namespace kvmready::cli {

Action setup_ansible_module(CLI::App& app) {
    struct Opts {
        std::string module, args_file;
    };
    auto o = std::make_shared<Opts>();
    auto* sub = app.add_subcommand("ansible-module",
                                   "Run as an Ansible module (the kvmready.host collection): read Ansible's JSON arguments file, print one JSON "
                                   "result");
    sub->add_option("module", o->module, "check, fix, smoke or bundle")->required()->check(CLI::IsMember({"check", "fix", "smoke", "bundle"}));
    sub->add_option("args_file", o->args_file, "The arguments file Ansible passes to a WANT_JSON module")->required();
    sub->footer("Exit status: 0 the module succeeded, 1 it failed (the JSON's msg says why), 65 the arguments file is not JSON, "
                "66 it is missing. The result is always one JSON object on stdout.");
    return [o] {
        nlohmann::json result;
        int code = kExitReady;
        try {
            result = ansible::dispatch(o->module, o->args_file);
        } catch (const ansible::ParamError& e) {
            result = {{"failed", true}, {"changed", false}, {"msg", e.what()}};
        } catch (const ExitError& e) {
            // Ansible shows msg; the exit code still says which input was wrong.
            result = {{"failed", true}, {"changed", false}, {"msg", e.what()}};
            code = e.code;
        }
        if (code == kExitReady && result.value("failed", false)) code = kExitNotReady;
        std::cout << util::dump_json(result) << "\n";
        return code;
    };
}

}  // namespace kvmready::cli
