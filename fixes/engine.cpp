#include "fixes/engine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "fixes/undo_trust.hpp"
#include "host/bounded_read.hpp"
#include "host/nofollow_fs.hpp"
#include "host/target.hpp"
#include "util/utf8.hpp"

namespace kvmready::fix {

namespace fs = std::filesystem;

namespace {

std::map<std::string, Op>& ops() {
    static std::map<std::string, Op> m;
    return m;
}

std::string now_iso() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Sortable by time: runs are listed (and the newest one resumed or undone) in
// the order of their ids, so the id carries microseconds in fixed width; a
// PID alone would misorder two runs of one second once PIDs wrap.
std::string new_run_id() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    return fmt::format("{}.{:06}Z-{}", buf, ts.tv_nsec / 1000, ::getpid());
}

// The journal steers what a root `--undo` writes and runs: it is trusted only
// from a directory (and file) owned by root (or whoever runs kvmready) that
// no one else can write, and never through a symlink.
void require_trusted(const std::string& path, bool dir) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) throw NoInputError(fmt::format("{}: {}", path, std::strerror(errno)));
    const char* why = nullptr;
    if (S_ISLNK(st.st_mode)) why = "is a symbolic link";
    else if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) why = dir ? "is not a directory" : "is not a regular file";
    else if (st.st_uid != 0 && st.st_uid != ::geteuid()) why = "is owned by another user";
    else if (st.st_mode & 022) why = "is writable by others than its owner";
    if (why)
        throw ExitError(kExitNoInput, fmt::format("{} {}: refusing to trust the fix journal there (it must be owned by root "
                                                  "and writable by no one else)", path, why));
}

// An existing directory must already be trustworthy: tightening its mode
// here would hide that someone else could have written a journal into it.
void make_private_dir(const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0) {
        require_trusted(dir, true);
        return;
    }
    if (const int e = host::make_private_dir(dir)) throw ExitError(kExitCantCreat, fmt::format("{}: {}", dir, std::generic_category().message(e)));
}

class Journal {
public:
    explicit Journal(const std::string& path) : file_(open_journal(path)) {}
    void add(nlohmann::json j) {
        j["time"] = now_iso();
        // Invalid UTF-8 (a binary original) must not make the journal
        // unwritable: escaped as everywhere (util/utf8.hpp).
        file_->append(util::dump_json(j) + "\n");
    }

private:
    static std::unique_ptr<host::AppendFile> open_journal(const std::string& path) {
        try {
            return std::make_unique<host::AppendFile>(path);
        } catch (const std::system_error& e) {
            throw ExitError(kExitCantCreat, fmt::format("{}: {}", path, std::strerror(e.code().value())));
        }
    }
    std::unique_ptr<host::AppendFile> file_;
};

RunInfo load_run(const std::string& dir, const std::string& id) {
    RunInfo r;
    r.id = id;
    r.dir = dir;
    require_trusted(dir, true);
    const std::string path = dir + "/journal.jsonl";
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0 && errno == ENOENT) return r;
    require_trusted(path, false);
    host::BoundedRead text = host::read_path_bounded(path, host::kMaxJournalBytes, O_NOFOLLOW);
    if (!text.data) {
        const std::string why = host::describe_read_failure(text, path, host::kMaxJournalBytes);
        if (text.error == EFBIG) throw DataError(why);
        throw NoInputError(why);
    }
    r.entries = parse_journal(*text.data, path);
    for (const auto& e : r.entries)
        if (e.type == "run") {
            r.header = e.j;
            break;
        }
    return r;
}

// Steps with a prepare record, in journal order, with their newest undo record.
struct PreparedStep {
    int step = 0;
    std::string op, fix_id, summary;
    nlohmann::json undo;
    bool done = false, undone = false;
};

std::vector<PreparedStep> prepared_steps(const RunInfo& r) {
    std::vector<PreparedStep> out;
    std::map<int, size_t> at;
    for (const auto& e : r.entries) {
        const int n = e.j.value("step", -1);
        if (e.type == "prepare") {
            at[n] = out.size();
            out.push_back({n, e.j.value("op", ""), e.j.value("fix", ""), e.j.value("summary", ""), e.j.value("undo", nlohmann::json()), false,
                           false});
        } else if (at.count(n)) {
            auto& p = out[at[n]];
            if (e.type == "done") {
                p.done = true;
                if (e.j.contains("undo")) p.undo = e.j["undo"];
            } else if (e.type == "undone") {
                p.undone = true;
            }
        }
    }
    return out;
}

// Fault injection for the interruption tests: KVMREADY_FIX_KILL_AT_STEP=N
// SIGKILLs this process after step N is journaled and before it runs;
// "N+" after it ran and before it is marked done. The kill is real; only its
// timing is chosen.
void kill_point(int idx, bool after) {
    const char* k = std::getenv("KVMREADY_FIX_KILL_AT_STEP");
    if (!k || !*k) return;
    const std::string v(k);
    const bool want_after = v.back() == '+';
    if (std::atoi(v.c_str()) == idx && want_after == after) host::kill_self();
}

// The root an undo writes under is this invocation's, never the journal's
// word; a journal recorded for another root is refused.
OpContext context_for(const RunInfo& r, int step, const std::function<void(const std::string&)>& log, const std::string& root) {
    const std::string recorded = r.header.value("root", "");
    auto canon = [](const std::string& p) {
        if (p.empty()) return p;
        std::error_code ec;
        auto c = fs::weakly_canonical(p, ec);
        return ec ? fs::path(p).lexically_normal().string() : c.string();
    };
    if (canon(recorded) != canon(root))
        throw DataError(fmt::format("{}/journal.jsonl: run {} was recorded for root '{}', not this run's root '{}'; refusing to touch it",
                                    r.dir, r.id, recorded, root));
    OpContext ctx;
    ctx.root = root;
    ctx.run_dir = r.dir;
    ctx.connect_uri = r.header.value("connect_uri", "qemu:///system");
    ctx.step_index = step;
    ctx.log = log;
    return ctx;
}

}  // namespace

void register_op(const std::string& name, Op op) { ops()[name] = std::move(op); }

const Op* find_op(const std::string& name) {
    register_builtin_ops();
    auto it = ops().find(name);
    return it == ops().end() ? nullptr : &it->second;
}

std::string state_dir(const std::string& root) {
    if (const char* e = std::getenv("KVMREADY_STATE_DIR"); e && *e) return e;
    return root + "/var/lib/kvmready/fix";
}

std::string RunInfo::status() const {
    bool ended = false, failed = false, undo_end = false, undo_failed = false;
    for (const auto& e : entries) {
        if (e.type == "end") {
            ended = true;
            failed = e.j.value("status", "") != "complete";
        } else if (e.type == "undo-end") {
            undo_end = true;
            undo_failed = e.j.value("status", "") != "complete";
        }
    }
    if (undo_end) return undo_failed ? "undo-incomplete" : "undone";
    if (!ended) return "interrupted";
    return failed ? "failed" : "complete";
}

std::vector<std::string> RunInfo::fixes() const {
    std::vector<std::string> out;
    for (const auto& e : entries)
        if (e.type == "prepare") {
            std::string f = e.j.value("fix", "");
            if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
        }
    return out;
}

int RunInfo::steps_done() const {
    return static_cast<int>(std::count_if(entries.begin(), entries.end(), [](const JournalEntry& e) { return e.type == "done"; }));
}

std::vector<RunInfo> list_runs(const std::string& state) {
    std::vector<RunInfo> out;
    std::error_code ec;
    const fs::path runs = fs::path(state) / "runs";
    if (!fs::is_directory(runs, ec)) return out;
    require_trusted(state, true);
    require_trusted(runs.string(), true);
    std::vector<std::string> ids;
    for (const auto& d : fs::directory_iterator(runs, ec))
        if (d.is_directory() && !d.is_symlink()) ids.push_back(d.path().filename());
    std::sort(ids.begin(), ids.end());
    for (const auto& id : ids) {
        RunInfo r = load_run((runs / id).string(), id);
        if (!r.header.is_null()) out.push_back(std::move(r));
    }
    return out;
}

StateLock::StateLock(const std::string& state) {
    make_private_dir(state);
    const std::string path = state + "/lock";
    int err = 0;
    bool held = false;
    fd_ = host::lock_file(path, &err, &held);
    if (fd_ >= 0) return;
    if (!held) throw ExitError(kExitCantCreat, fmt::format("{}: {}", path, std::strerror(err)));
    throw ExitError(kExitTempFail, fmt::format("another `kvmready fix` is running (it holds {}); try again when it is done", path));
}

StateLock::~StateLock() { host::unlock_file(fd_); }

std::optional<RunInfo> interrupted_run(const std::string& state) {
    auto runs = list_runs(state);
    if (!runs.empty() && runs.back().status() == "interrupted") return runs.back();
    return std::nullopt;
}

std::vector<std::string> revert_half_done(const std::string& state, const std::vector<std::string>& argv,
                                          const std::function<void(const std::string&)>& log, const std::string& root) {
    std::vector<std::string> out;
    auto resumed = interrupted_run(state);
    if (!resumed) return out;
    (void)context_for(*resumed, 0, log, root);
    const auto prepared = prepared_steps(*resumed);
    std::vector<int> half_done;
    for (const auto& p : prepared)
        if (!p.done && !p.undone) half_done.push_back(p.step);
    check_undo_records(*resumed, half_done, root);  // refuses before anything is touched
    Journal j(resumed->dir + "/journal.jsonl");
    j.add({{"type", "resumed"}, {"argv", argv}});
    for (const auto& p : prepared) {
        if (p.done || p.undone) continue;
        const Op* op = find_op(p.op);
        if (!op) continue;
        OpContext ctx = context_for(*resumed, p.step, log, root);
        try {
            op->undo(p.undo, ctx);
            j.add({{"type", "undone"}, {"step", p.step}, {"reason", "half-done when the run was interrupted"}});
            out.push_back(fmt::format("{}: {}", p.fix_id, p.summary));
        } catch (const std::exception& e) {
            j.add({{"type", "undo-failed"}, {"step", p.step}, {"error", e.what()}});
            throw ExitError(kExitNotReady, fmt::format("run {} was interrupted during \"{}\" and that step cannot be put back: {}; "
                                                       "`kvmready fix --undo {}` reverts the rest",
                                                       resumed->id, p.summary, e.what(), resumed->id));
        }
    }
    return out;
}

ApplyResult apply_plans(const std::string& state, const std::vector<Plan>& plans, const FixOptions& options,
                        const std::vector<std::string>& argv, const std::function<void(const std::string&)>& log) {
    ApplyResult res;
    auto resumed = interrupted_run(state);
    std::string dir;
    int next_step = 0;
    if (resumed) {
        res.resumed = true;
        res.run_id = resumed->id;
        dir = resumed->dir;
        for (const auto& p : prepared_steps(*resumed)) next_step = std::max(next_step, p.step + 1);
    } else {
        res.run_id = new_run_id();
        dir = state + "/runs/" + res.run_id;
        make_private_dir(dir);
    }
    res.run_dir = dir;
    Journal j(dir + "/journal.jsonl");
    if (!resumed)
        j.add({{"type", "run"}, {"id", res.run_id}, {"created", now_iso()}, {"argv", argv}, {"root", options.root},
               {"connect_uri", options.connect_uri}, {"user", options.user}});
    RunInfo self;
    self.id = res.run_id;
    self.dir = dir;
    self.header = {{"root", options.root}, {"connect_uri", options.connect_uri}};

    bool stopped = false;
    int n = next_step;
    for (const auto& plan : plans) {
        for (const auto& step : plan.steps) {
            StepReport rep{plan.fix_id, step.summary, "", ""};
            if (stopped) {
                rep.status = "not-done";
                res.steps.push_back(rep);
                continue;
            }
            if (step.runtime && !options.root.empty()) {
                rep.status = "skipped";
                rep.detail = "a change to the running system; --root changes files only";
                j.add({{"type", "skipped"}, {"fix", plan.fix_id}, {"summary", step.summary}, {"reason", rep.detail}});
                res.steps.push_back(rep);
                continue;
            }
            const Op* op = find_op(step.op);
            const int idx = n++;
            OpContext ctx = context_for(self, idx, log, options.root);
            try {
                if (!op) throw std::runtime_error(fmt::format("no op named {} (a bug)", step.op));
                nlohmann::json undo = op->prepare(step, ctx);
                // The step's args: what --undo holds each undo record to (undo_trust.hpp).
                j.add({{"type", "prepare"}, {"step", idx}, {"fix", plan.fix_id}, {"op", step.op}, {"summary", step.summary}, {"args", step.args},
                       {"undo", undo}});
                kill_point(idx, false);
                op->apply(step, ctx, undo);
                kill_point(idx, true);
                j.add({{"type", "done"}, {"step", idx}, {"undo", undo}});
                rep.status = "done";
                log(fmt::format("  done  [{}] {}", plan.fix_id, step.summary));
            } catch (const std::exception& e) {
                j.add({{"type", "failed"}, {"step", idx}, {"fix", plan.fix_id}, {"summary", step.summary}, {"error", e.what()}});
                rep.status = "failed";
                rep.detail = e.what();
                res.ok = false;
                stopped = true;
                log(fmt::format("  FAIL  [{}] {}: {}", plan.fix_id, step.summary, e.what()));
            }
            res.steps.push_back(rep);
        }
    }
    j.add({{"type", "end"}, {"status", res.ok ? "complete" : "failed"}});
    return res;
}

UndoResult undo_run(const std::string& state, const std::string& id, const std::function<void(const std::string&)>& log,
                    const std::string& root) {
    auto runs = list_runs(state);
    const RunInfo* run = nullptr;
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
        if (id.empty() ? it->status() != "undone" : it->id == id) {
            run = &*it;
            break;
        }
    }
    if (!run) {
        if (id.empty()) throw ExitError(kExitNoInput, fmt::format("nothing to undo: no run in {} that is not undone already", state));
        throw ExitError(kExitNoInput, fmt::format("no run {} in {} (see `kvmready fix --history`)", id, state));
    }
    UndoResult res;
    res.run_id = run->id;
    if (run->status() == "undone") {
        log(fmt::format("run {} is already undone", run->id));
        return res;
    }
    (void)context_for(*run, 0, log, root);  // refuses another root's run before anything is touched
    auto steps = prepared_steps(*run);
    std::vector<int> to_undo;
    for (const auto& p : steps)
        if (!p.undone) to_undo.push_back(p.step);
    check_undo_records(*run, to_undo, root);  // and a record its own step does not account for
    Journal j(run->dir + "/journal.jsonl");
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
        StepReport rep{it->fix_id, it->summary, "", ""};
        if (it->undone) {
            rep.status = "skipped";
            rep.detail = "already undone";
            res.steps.push_back(rep);
            continue;
        }
        const Op* op = find_op(it->op);
        OpContext ctx = context_for(*run, it->step, log, root);
        try {
            if (!op) throw std::runtime_error(fmt::format("no op named {} in this kvmready", it->op));
            op->undo(it->undo, ctx);
            j.add({{"type", "undone"}, {"step", it->step}});
            rep.status = "done";
            log(fmt::format("  undone [{}] {}", it->fix_id, it->summary));
        } catch (const std::exception& e) {
            j.add({{"type", "undo-failed"}, {"step", it->step}, {"error", e.what()}});
            rep.status = "failed";
            rep.detail = e.what();
            res.ok = false;
            log(fmt::format("  FAIL   [{}] {}: {}", it->fix_id, it->summary, e.what()));
        }
        res.steps.push_back(rep);
    }
    j.add({{"type", "undo-end"}, {"status", res.ok ? "complete" : "failed"}});
    return res;
}

PlanSet make_plans(const Facts& facts, const Report& report, const FixOptions& options) {
    PlanSet set;
    PlanInput in{facts, report, options};
    auto selected = [&](const std::string& id) {
        return options.only.empty() || std::find(options.only.begin(), options.only.end(), id) != options.only.end();
    };
    std::set<std::string> covered;
    for (const auto& spec : registry()) {
        if (!selected(spec.id)) continue;
        try {
            auto plan = spec.plan(in);
            if (!plan) continue;
            if (plan->fix_id.empty()) plan->fix_id = spec.id;
            if (plan->title.empty()) plan->title = spec.title;
            for (const auto& r : plan->repairs) covered.insert(r);
            (plan->applicability == Applicability::Manual ? set.manual : set.plans).push_back(std::move(*plan));
        } catch (const std::exception& e) {
            set.errors.push_back(fmt::format("{}: {}", spec.id, e.what()));
        }
    }
    if (!options.only.empty()) return set;
    // Problems no fix answers: what a person must do, from the finding itself.
    for (const auto& f : report.findings) {
        if (f.status != Status::Fail && f.status != Status::Warn) continue;
        if (covered.count(f.id)) continue;
        if (f.remediation.text.empty() && f.remediation.commands.empty()) continue;
        Plan p;
        p.fix_id = f.remediation.fix_id;
        p.title = f.title;
        p.applicability = Applicability::Manual;
        p.repairs = {f.id};
        p.reason = f.message;
        p.manual = f.remediation.text;
        for (const auto& c : f.remediation.commands) p.notes.push_back("$ " + c);
        set.manual.push_back(std::move(p));
    }
    return set;
}

}  // namespace kvmready::fix
