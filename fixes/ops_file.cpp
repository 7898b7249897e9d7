// The primitive ops every file-based and runtime fix is made of.
#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "fixes/fix.hpp"
#include "host/bounded_read.hpp"
#include "host/target.hpp"

namespace kvmready::fix {

namespace {

using host::FileMeta;

std::string temp_name_for(const OpContext& ctx, const std::string& path) {
    const std::string leaf = path.substr(path.rfind('/') + 1);
    const std::string run = ctx.run_dir.substr(ctx.run_dir.rfind('/') + 1);
    return fmt::format(".{}.kvmready-{}-{}", leaf, run, ctx.step_index);
}

// Copies of originals live in the run's directory, one per step and slot.
std::string saved_path(const OpContext& ctx, const std::string& slot) {
    return fmt::format("{}/step{}.{}", ctx.run_dir, ctx.step_index, slot);
}

// A saved copy as the journal names it, read only from this run's own
// directory (the journal could name any file; only its leaf counts), never
// through a symlink, bounded.
std::string read_saved(const OpContext& ctx, const std::string& recorded) {
    const std::string leaf = recorded.substr(recorded.rfind('/') + 1);
    if (leaf.rfind("step", 0) != 0 || leaf.find("..") != std::string::npos)
        throw std::runtime_error(fmt::format("{}: the journal names a copy that is not one of this run's", recorded));
    const std::string path = ctx.run_dir + "/" + leaf;
    host::BoundedRead r = host::read_path_bounded(path, host::kMaxHostFileBytes, O_NOFOLLOW);
    if (!r.data) {
        if (r.error == ENOENT) throw std::runtime_error(fmt::format("{}: the journal's copy is missing", path));
        throw std::runtime_error(host::describe_read_failure(r, path, host::kMaxHostFileBytes));
    }
    return std::move(*r.data);
}

nlohmann::json save_original(OpContext& ctx, const std::string& path, const std::string& slot) {
    FileMeta meta;
    auto cur = ctx.sys().read_file(path, &meta);
    nlohmann::json rec = {{"path", path}, {"existed", cur.has_value()}};
    if (cur) {
        const std::string copy = saved_path(ctx, slot);
        host::write_file_durably(copy, *cur);
        rec["copy"] = copy;
        rec["mode"] = meta.mode;
        rec["uid"] = meta.uid;
        rec["gid"] = meta.gid;
    }
    return rec;
}

// Puts a saved original back (or removes what did not exist before).
void restore_original(OpContext& ctx, const nlohmann::json& rec, const std::string& temp) {
    const std::string path = rec.at("path");
    if (!rec.value("existed", false)) {
        ctx.sys().remove_file(path);
        return;
    }
    ctx.sys().write_file(path, read_saved(ctx, rec.at("copy")),
                 FileMeta{rec.at("mode").get<unsigned>(), rec.at("uid").get<uint32_t>(), rec.at("gid").get<uint32_t>()}, temp);
}

// The journal records runtime paths with the root prefixed (as the user
// would find them); the target applies the root itself.
std::string root_path(const OpContext& ctx, const std::string& path) { return ctx.root + path; }

// A path an undo record names (with the root prefixed, as prepare wrote it):
// only where this op could have written, under this run's root. Returned as
// the target sees it (root removed).
std::string recorded_path(const OpContext& ctx, const nlohmann::json& u, std::initializer_list<const char*> under) {
    const std::string path = u.at("path").get<std::string>();
    const bool ok = path.find("/../") == std::string::npos && !path.ends_with("/..") &&
                    std::any_of(under.begin(), under.end(), [&](const char* p) { return path.rfind(ctx.root + p, 0) == 0; });
    if (!ok) throw std::runtime_error(fmt::format("{}: the journal names a path this fix never writes; refusing", path));
    return path.substr(ctx.root.size());
}

void check_unchanged(OpContext& ctx, const Step& s) {
    const std::string path = s.args.at("path");
    auto cur = ctx.sys().read_file(path);
    const auto& before = s.args.at("before");
    const bool same = before.is_null() ? !cur.has_value() : (cur && *cur == before.get<std::string>());
    if (!same) throw std::runtime_error(fmt::format("{} changed since the plan was made; run `kvmready fix` again", path));
}

// Parent directories write_atomic will create, outermost first, so undo can
// remove them again (only if still empty).
nlohmann::json missing_parents(OpContext& ctx, const std::string& path) {
    nlohmann::json out = nlohmann::json::array();
    std::string dir = path.substr(0, path.rfind('/'));
    std::vector<std::string> missing;
    while (!dir.empty()) {
        if (ctx.sys().exists(dir)) break;
        missing.push_back(dir);
        dir = dir.substr(0, dir.rfind('/'));
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) out.push_back(*it);
    return out;
}

void remove_created_dirs(OpContext& ctx, const nlohmann::json& u) {
    if (!u.contains("created_dirs")) return;
    const auto& dirs = u.at("created_dirs");
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) (void)ctx.sys().remove_empty_dir(it->get<std::string>());  // fails when not empty: kept
}

Op file_write_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string path = s.args.at("path");
        auto rec = save_original(ctx, path, "orig");
        rec["temp"] = temp_name_for(ctx, path);
        rec["written"] = s.args.at("content");
        rec["created_dirs"] = missing_parents(ctx, path);
        return rec;
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json& undo) {
        const std::string path = s.args.at("path");
        auto cur = ctx.sys().read_file(path);
        // A resumed run finds its own write already in place.
        if (!(cur && *cur == s.args.at("content").get<std::string>())) check_unchanged(ctx, s);
        ctx.sys().write_file(path, s.args.at("content"),
                     FileMeta{s.args.at("mode").get<unsigned>(), s.args.at("uid").get<uint32_t>(), s.args.at("gid").get<uint32_t>()},
                     undo.at("temp"));
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        const std::string path = u.at("path");
        ctx.sys().remove_temp(path, u.at("temp"));
        auto cur = ctx.sys().read_file(path);
        const std::string written = u.at("written");
        const bool ours = cur && *cur == written;
        const bool untouched = u.value("existed", false) ? (cur && u.contains("copy") && *cur == read_saved(ctx, u.at("copy"))) : !cur;
        if (!untouched) {
            if (!ours)
                throw std::runtime_error(fmt::format("{} was changed after kvmready wrote it; left as it is (kvmready's original copy: {})",
                                                     path, u.value("copy", std::string("none, the file did not exist"))));
            restore_original(ctx, u, u.at("temp"));
        }
        remove_created_dirs(ctx, u);
    };
    return op;
}

Op file_remove_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        auto rec = save_original(ctx, s.args.at("path"), "orig");
        rec["temp"] = temp_name_for(ctx, s.args.at("path"));
        return rec;
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json&) {
        const std::string path = s.args.at("path");
        if (!ctx.sys().read_file(path)) return;
        check_unchanged(ctx, s);
        ctx.sys().remove_file(path);
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        if (!u.value("existed", false)) return;
        if (ctx.sys().read_file(u.at("path"))) return;  // never removed, or recreated since
        restore_original(ctx, u, u.at("temp"));
    };
    return op;
}

Op proc_write_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string path = s.args.at("path");
        return nlohmann::json{{"path", root_path(ctx, path)}, {"old", ctx.sys().read_value(path)}};
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json&) {
        const std::string path = s.args.at("path");
        const std::string want = s.args.at("value");
        ctx.sys().write_value(path, want);
        const std::string now = ctx.sys().read_value(path);
        // The kernel may grant less (nr_hugepages when memory is short).
        if (now != want)
            throw std::runtime_error(fmt::format("{}: wrote {}, the kernel now reports {}", root_path(ctx, path), want, now));
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        ctx.sys().write_value(recorded_path(ctx, u, {"/proc/sys/", "/sys/"}), u.at("old"));
    };
    return op;
}

Op command_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        nlohmann::json rec = {{"argv", s.args.at("argv")}, {"undo_argv", s.args.at("undo_argv")}, {"snapshots", nlohmann::json::array()}};
        int slot = 0;
        for (const auto& p : s.args.at("snapshots")) rec["snapshots"].push_back(save_original(ctx, p, fmt::format("snap{}", slot++)));
        return rec;
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json& undo) {
        const auto argv = s.args.at("argv").get<std::vector<std::string>>();
        auto r = ctx.sys().run(argv, 60000);
        if (!r.started) throw std::runtime_error(fmt::format("{}: {}", argv[0], r.error));
        if (r.timed_out) throw std::runtime_error(fmt::format("{}: no answer within 60 s (killed)", quote_argv(argv)));
        if (r.exit_code != 0) {
            std::string err = r.err.empty() ? r.out : r.err;
            while (!err.empty() && err.back() == '\n') err.pop_back();
            throw std::runtime_error(fmt::format("{} exited with {}: {}", quote_argv(argv), r.exit_code, err));
        }
        // What the program left, so undo can tell whether anyone edited since.
        int slot = 0;
        for (auto& snap : undo["snapshots"]) {
            auto cur = ctx.sys().read_file(snap.at("path"));
            if (cur) {
                const std::string copy = saved_path(ctx, fmt::format("after{}", slot));
                host::write_file_durably(copy, *cur);
                snap["after"] = copy;
            }
            ++slot;
        }
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        bool restored_all = !u.at("snapshots").empty();
        for (const auto& snap : u.at("snapshots")) {
            auto cur = ctx.sys().read_file(snap.at("path"));
            const bool untouched = snap.value("existed", false) ? (cur && *cur == read_saved(ctx, snap.at("copy"))) : !cur;
            if (untouched) continue;
            // No "after" copy: the run died between the program and its
            // journal record, holding the lock; the change is this step's.
            if (!snap.contains("after") || (cur && *cur == read_saved(ctx, snap.at("after")))) {
                restore_original(ctx, snap, fmt::format(".kvmready-undo-{}", ::getpid()));
                continue;
            }
            restored_all = false;
        }
        if (restored_all) return;
        const auto undo_argv = u.at("undo_argv").get<std::vector<std::string>>();
        if (undo_argv.empty()) {
            if (u.at("snapshots").empty()) ctx.log(fmt::format("cannot undo `{}` (no inverse)", quote_argv(u.at("argv"))));
            else throw std::runtime_error(fmt::format("files changed by `{}` were edited since; not restored", quote_argv(u.at("argv"))));
            return;
        }
        auto r = ctx.sys().run(undo_argv, 60000);
        std::string err = r.started ? r.err : r.error;
        while (!err.empty() && err.back() == '\n') err.pop_back();
        if (!r.started || r.exit_code != 0) throw std::runtime_error(fmt::format("{} failed: {}", quote_argv(undo_argv), err));
    };
    return op;
}

Op node_perms_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string path = s.args.at("path");
        const FileMeta m = ctx.sys().node_meta(path);
        return nlohmann::json{{"path", root_path(ctx, path)}, {"mode", m.mode}, {"uid", m.uid}, {"gid", m.gid}};
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json&) {
        const std::string group = s.args.at("group");
        struct group gr{};
        struct group* found = nullptr;
        std::vector<char> buf(1 << 16);
        if (::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
            throw std::runtime_error(fmt::format("group {} does not exist", group));
        ctx.sys().set_node_perms(s.args.at("path"), s.args.at("mode"), 0, found->gr_gid);
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        ctx.sys().set_node_perms(recorded_path(ctx, u, {"/dev/"}), u.at("mode"), u.at("uid"), u.at("gid"));
    };
    return op;
}

void run_checked(host::Target& t, const std::vector<std::string>& argv) {
    auto r = t.run(argv, 60000);
    if (!r.started) throw std::runtime_error(fmt::format("{}: {}", argv[0], r.error));
    if (r.exit_code != 0)
        throw std::runtime_error(fmt::format("{} exited with {}: {}", quote_argv(argv), r.exit_code, r.timed_out ? "timed out" : r.err));
}

// Reloading a module with one parameter changed; undo reloads it with the old
// value. Either direction only while nothing holds the module.
Op module_reload_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string m = s.args.at("module"), p = s.args.at("param");
        std::string old = ctx.sys().read_value("/sys/module/" + m + "/parameters/" + p);
        if (old == "Y") old = "1";
        if (old == "N") old = "0";
        return nlohmann::json{{"module", m}, {"param", p}, {"old", old}};
    };
    auto reload = [](host::Target& t, const std::string& m, const std::string& p, const std::string& v) {
        const std::string refs = t.read_value("/sys/module/" + m + "/refcnt");
        if (refs != "0") throw std::runtime_error(fmt::format("{} is in use ({} references): not reloaded", m, refs));
        run_checked(t, {"rmmod", m});  // only the vendor module: kvm keeps its runtime settings
        run_checked(t, {"modprobe", m, p + "=" + v});
    };
    op.apply = [reload](const Step& s, OpContext& ctx, nlohmann::json&) {
        reload(ctx.sys(), s.args.at("module"), s.args.at("param"), s.args.at("value"));
    };
    op.undo = [reload](const nlohmann::json& u, OpContext& ctx) { reload(ctx.sys(), u.at("module"), u.at("param"), u.at("old")); };
    return op;
}

}  // namespace

void register_file_ops() {
    register_op("module.reload", module_reload_op());
    register_op("file.write", file_write_op());
    register_op("file.remove", file_remove_op());
    register_op("proc.write", proc_write_op());
    register_op("command", command_op());
    register_op("node.perms", node_perms_op());
}

}  // namespace kvmready::fix
