// The kvmready_fix module: Ansible's check mode is kvmready's dry run, diff
// mode shows the plan's unified diffs (files and libvirt XML), a real run
// applies only what the play allows, and `changed` is what really happened;
// state=absent undoes a journaled run.
#include <algorithm>

#include <fmt/format.h>

#include "cli/ansible_module.hpp"
#include "util/text.hpp"

namespace kvmready::cli::ansible {

namespace {

// The request options `kvmready fix` shares with check (who, which network,
// pool, bridge...), passed through unchanged.
std::vector<std::string> request_args(const Args& a) {
    static const std::vector<std::pair<std::string, std::string>> map{
        {"connect", "--connect"}, {"network", "--network"}, {"pool", "--pool"},
        {"bridge", "--bridge"},     {"subnet", "--subnet"},   {"pool_path", "--pool-path"},
        {"uplink", "--uplink"},     {"hugepages", "--hugepages"}};
    std::vector<std::string> out;
    const std::string user = subject_user(a);
    if (!user.empty()) out.insert(out.end(), {"--user", user});
    for (const auto& [param, flag] : map) {
        const std::string v = a.str(param, "");
        if (!v.empty()) out.insert(out.end(), {flag, v});
    }
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

struct Selection {
    std::vector<std::string> ids;           // the fixes this task applies
    std::vector<std::string> needs_confirm;  // planned 'confirm' fixes the play did not allow
    nlohmann::json diffs = nlohmann::json::array();
    nlohmann::json plans = nlohmann::json::array();
};

// Automatic fixes always; a 'confirm' fix only when `confirm` names it (or
// says all); manual ones never (they stay in the plan for a person).
Selection select(const nlohmann::json& plan, const std::vector<std::string>& confirm) {
    Selection s;
    for (const auto& p : plan.value("plans", nlohmann::json::array())) {
        const std::string id = p["fix_id"].is_string() ? p["fix_id"].get<std::string>() : "";
        const std::string kind = p.value("applicability", "");
        const bool take = !id.empty() && (kind == "automatic" || (kind == "confirm" && (contains(confirm, "all") || contains(confirm, id))));
        if (!take) {
            if (kind == "confirm" && !id.empty()) s.needs_confirm.push_back(id);
            continue;
        }
        s.ids.push_back(id);
        s.plans.push_back(p);
        for (const auto& st : p.value("steps", nlohmann::json::array()))
            if (st.contains("diff") && st["diff"].is_string() && !st["diff"].get<std::string>().empty())
                s.diffs.push_back({{"prepared", st["diff"]}});
    }
    return s;
}

nlohmann::json present(const Args& a) {
    const std::vector<std::string> confirm = a.list("confirm");
    const std::vector<std::string> only = a.list("only");
    const std::vector<std::string> req = request_args(a);
    // The dry run with --yes lists every plan, 'confirm' ones included; the
    // selection below decides which of them this task may apply.
    std::vector<std::string> dry{"fix", "--json", "--yes"};
    if (!only.empty()) dry.push_back("--only=" + util::join(only, ","));
    dry.insert(dry.end(), req.begin(), req.end());
    const host::RunResult dr = run_self(dry, 300 * 1000);
    const nlohmann::json plan = parse_json_output(dr, "kvmready fix (dry run)");
    const Selection sel = select(plan, confirm);
    nlohmann::json out{{"plans", sel.plans},
                       {"fixes", sel.ids},
                       {"needs_confirm", sel.needs_confirm},
                       {"manual", plan.value("manual", nlohmann::json::array())},
                       {"errors", plan.value("errors", nlohmann::json::array())}};
    if (a.diff_mode()) out["diff"] = sel.diffs;
    if (!sel.needs_confirm.empty())
        out["warnings"] = {fmt::format("not applied, allow with confirm: [{}]: {}", util::join(sel.needs_confirm, ", "),
                                       "they change existing state")};
    if (sel.ids.empty() || a.check_mode()) {
        out["changed"] = !sel.ids.empty();
        out["msg"] = sel.ids.empty() ? std::string("nothing to fix")
                                     : fmt::format("check mode: would apply {}", util::join(sel.ids, ", "));
        return out;
    }
    std::vector<std::string> apply{"fix", "--apply", "--yes", "--json", "--only=" + util::join(sel.ids, ",")};
    apply.insert(apply.end(), req.begin(), req.end());
    const host::RunResult ar = run_self(apply, 900 * 1000);
    if (ar.exit_code == 77) throw ParamError("kvmready fix needs root to apply: use become: true on this task");
    const nlohmann::json res = parse_json_output(ar, "kvmready fix --apply");
    bool changed = false;
    std::string why;  // the failed step and its error: what Ansible shows
    for (const auto& st : res.value("steps", nlohmann::json::array())) {
        if (st.value("status", "") == "done") changed = true;
        if (st.value("status", "") == "failed" && why.empty())
            why = fmt::format("[{}] {}: {}", st.value("fix_id", ""), st.value("summary", ""), st.value("detail", ""));
    }
    out["changed"] = changed;
    out["failed"] = !res.value("ok", false);
    out["run_id"] = res.value("run_id", nlohmann::json());
    out["result"] = res;
    out["rc"] = ar.exit_code;
    out["msg"] = res.value("ok", false) ? fmt::format("applied {} (run {})", util::join(sel.ids, ", "), res.value("run_id", std::string()))
                                        : fmt::format("kvmready fix --apply failed: {}", why.empty() ? util::trim(ar.err) : why);
    return out;
}

nlohmann::json absent(const Args& a) {
    const std::string want = a.str("run_id", "");
    const host::RunResult hr = run_self({"fix", "--history", "--json"}, 60 * 1000);
    const nlohmann::json hist = parse_json_output(hr, "kvmready fix --history");
    const auto runs = hist.value("runs", nlohmann::json::array());
    const nlohmann::json* target = nullptr;
    for (const auto& r : runs)
        if (want.empty() ? true : r.value("run_id", "") == want) target = &r;  // the newest one: history is oldest first
    if (!want.empty() && !target) throw ParamError(fmt::format("no fix run '{}' on this host (kvmready fix --history)", want));
    if (!target || target->value("status", "") == "undone")
        return {{"changed", false}, {"msg", target ? fmt::format("run {} is already undone", target->value("run_id", "")) : "no fix run to undo"}};
    const std::string id = target->value("run_id", "");
    if (a.check_mode()) return {{"changed", true}, {"run_id", id}, {"msg", fmt::format("check mode: would undo run {}", id)}};
    const host::RunResult ur = run_self({"fix", "--undo", id, "--json"}, 900 * 1000);
    if (ur.exit_code == 77) throw ParamError("kvmready fix --undo needs root: use become: true on this task");
    const nlohmann::json res = parse_json_output(ur, "kvmready fix --undo");
    const bool ok = res.value("ok", false);
    return {{"changed", true},
            {"failed", !ok},
            {"run_id", id},
            {"result", res},
            {"msg", ok ? fmt::format("undid run {}", id) : fmt::format("undoing run {} failed: {}", id, util::trim(ur.err))}};
}

}  // namespace

nlohmann::json module_fix(const Args& a) {
    return a.str("state", "present", {"present", "absent"}) == "absent" ? absent(a) : present(a);
}

}  // namespace kvmready::cli::ansible
