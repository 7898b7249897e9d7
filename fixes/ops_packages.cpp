// Op packages.install (pkg.virt-stack): runs the package manager through the
// Target and journals what it really installed. prepare records the installed
// set before; apply installs and records the difference (the packages asked
// for and every dependency that came with them); undo purges exactly that
// difference, and refuses when the package manager would remove anything
// else (a package installed since that depends on them).
#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "fixes/fixes.hpp"
#include "fixes/packages.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

constexpr int kInstallTimeoutMs = 30 * 60 * 1000;  // a whole stack over a slow mirror
constexpr int kQueryTimeoutMs = 60 * 1000;

std::string failure(const std::vector<std::string>& argv, const host::RunResult& r) {
    if (!r.started) return fmt::format("{}: {}", argv[0], r.error);
    if (r.timed_out) return fmt::format("{}: no answer in time (killed)", quote_argv(argv));
    std::string err = util::trim(r.err.empty() ? r.out : r.err);
    if (err.size() > 2000) err = "..." + err.substr(err.size() - 2000);  // the end says what failed
    return fmt::format("{} exited with {}: {}", quote_argv(argv), r.exit_code, err);
}

void run_or_throw(OpContext& ctx, const std::vector<std::string>& argv, int timeout_ms) {
    const auto r = ctx.sys().run(argv, timeout_ms);
    if (!r.started || r.timed_out || r.exit_code != 0) throw std::runtime_error(failure(argv, r));
}

// Every installed package, as the family's tools name them for removal
// (dpkg: name or name:arch; rpm: name.arch).
std::set<std::string> installed_now(OpContext& ctx, const std::string& family) {
    std::vector<std::string> argv;
    if (family == "apt") argv = {"dpkg-query", "-W", "-f=${binary:Package}\\t${db:Status-Status}\\n"};
    else argv = {"rpm", "-qa", "--qf", "%{NAME}.%{ARCH}\\n"};
    const auto r = ctx.sys().run(argv, kQueryTimeoutMs);
    if (!r.started || r.timed_out || r.exit_code != 0) throw std::runtime_error(failure(argv, r));
    std::set<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        if (family != "apt") {
            if (!util::trim(line).empty()) out.insert(util::trim(line));
            continue;
        }
        const auto tab = line.find('\t');
        if (tab != std::string::npos && line.substr(tab + 1) == "installed") out.insert(line.substr(0, tab));
    }
    return out;
}

std::vector<std::string> difference(const std::set<std::string>& after, const std::vector<std::string>& before) {
    const std::set<std::string> b(before.begin(), before.end());
    std::vector<std::string> out;
    for (const auto& p : after)
        if (!b.count(p)) out.push_back(p);
    return out;
}

std::string bare(std::string name) {
    if (auto c = name.find(':'); c != std::string::npos) name.erase(c);
    return name;
}

// apt: what `apt-get purge` would remove beyond names; nothing else may go.
void refuse_collateral_apt(OpContext& ctx, const std::vector<std::string>& names) {
    std::vector<std::string> sim = {"apt-get", "-s", "purge"};
    sim.insert(sim.end(), names.begin(), names.end());
    const auto r = ctx.sys().run(sim, kQueryTimeoutMs);
    if (!r.started || r.timed_out || r.exit_code != 0) throw std::runtime_error(failure(sim, r));
    std::set<std::string> ours;
    for (const auto& n : names) ours.insert(bare(n));
    std::vector<std::string> others;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Purg ", 0) != 0 && line.rfind("Remv ", 0) != 0) continue;
        const auto w = util::words(line.substr(5));
        if (!w.empty() && !ours.count(bare(w[0]))) others.push_back(w[0]);
    }
    if (!others.empty())
        throw std::runtime_error(fmt::format("purging what this run installed would also remove {} (installed since, depending on it); "
                                             "nothing was removed",
                                             util::join(others, " ")));
}

std::vector<std::string> remove_argv(const std::string& family, const std::vector<std::string>& names) {
    std::vector<std::string> argv;
    if (family == "apt") argv = {"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y"};
    else argv = {family, "remove", "-y"};
    argv.insert(argv.end(), names.begin(), names.end());
    return argv;
}

Op install_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string family = s.args.at("family");
        const auto before = installed_now(ctx, family);
        return nlohmann::json{{"family", family}, {"before", std::vector<std::string>(before.begin(), before.end())}};
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json& undo) {
        const std::string family = s.args.at("family");
        const bool updated = s.args.value("update", false);
        if (updated) run_or_throw(ctx, update_argv(), kInstallTimeoutMs);
        const auto argv = install_argv(family, s.args.at("packages").get<std::vector<std::string>>());
        auto r = ctx.sys().run(argv, kInstallTimeoutMs);
        if (family == "apt" && !updated && r.started && !r.timed_out && r.exit_code != 0) {
            // Stale package lists (a cloud image's) name versions the mirror no longer has.
            ctx.log("  apt-get install failed; apt-get update, then once more");
            run_or_throw(ctx, update_argv(), kInstallTimeoutMs);
            r = ctx.sys().run(argv, kInstallTimeoutMs);
        }
        // Recorded even when the install failed halfway: undo removes what did land.
        const auto added = difference(installed_now(ctx, family), undo.at("before").get<std::vector<std::string>>());
        undo["installed"] = added;
        if (!r.started || r.timed_out || r.exit_code != 0) throw std::runtime_error(failure(argv, r));
        ctx.log(fmt::format("  installed {} package{}: {}", added.size(), added.size() == 1 ? "" : "s", util::join(added, " ")));
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        const std::string family = u.at("family");
        const auto now = installed_now(ctx, family);
        // No "installed": the run died inside apply; what is new since prepare is its doing.
        std::vector<std::string> ours = u.contains("installed") ? u.at("installed").get<std::vector<std::string>>()
                                                                : difference(now, u.at("before").get<std::vector<std::string>>());
        std::erase_if(ours, [&](const std::string& p) { return !now.count(p); });  // removed since: nothing to do
        if (ours.empty()) return;
        if (family == "apt") refuse_collateral_apt(ctx, ours);
        else {
            std::vector<std::string> test = {"rpm", "-e", "--test"};
            test.insert(test.end(), ours.begin(), ours.end());
            run_or_throw(ctx, test, kQueryTimeoutMs);  // fails when a package installed since needs them
        }
        run_or_throw(ctx, remove_argv(family, ours), kInstallTimeoutMs);
        ctx.log(fmt::format("  removed {} package{}: {}", ours.size(), ours.size() == 1 ? "" : "s", util::join(ours, " ")));
    };
    return op;
}

}  // namespace

void register_package_ops() { register_op("packages.install", install_op()); }

}  // namespace kvmready::fix
