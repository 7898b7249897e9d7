#include "fixes/undo_trust.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "fixes/engine.hpp"

namespace kvmready::fix {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A reason to refuse; the caller adds where.
struct Refusal {
    std::string why;
};

[[noreturn]] void refuse(const std::string& why) { throw Refusal{why}; }

// Where the fixes write files (fixes/kvm.cpp, sysctl.cpp, bridge_*.cpp):
// configuration directories of their own kinds, and the group databases
// shadow's tools edit (snapshots of `command` steps).
const char* const kFileDirs[] = {"/etc/modules-load.d/", "/etc/modprobe.d/", "/etc/udev/rules.d/", "/etc/sysctl.d/",
                                 "/etc/netplan/",        "/etc/systemd/network/", "/etc/network/"};
const std::set<std::string> kSnapshotFiles = {"/etc/group", "/etc/gshadow", "/etc/group-", "/etc/gshadow-", "/etc/.pwd.lock"};

const json& field(const json& j, const char* key) {
    static const json none;
    return j.is_object() && j.contains(key) ? j[key] : none;
}

std::string string_field(const json& j, const char* key, const char* what) {
    const json& v = field(j, key);
    if (!v.is_string()) refuse(fmt::format("{} \"{}\" is missing or not a string", what, key));
    return v.get<std::string>();
}

// Absolute, without empty, "." or ".." components: the path itself, never
// one that resolves elsewhere.
bool clean_absolute(const std::string& p) {
    if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
    size_t i = 1;
    while (i <= p.size()) {
        const size_t j = std::min(p.find('/', i), p.size());
        const std::string c = p.substr(i, j - i);
        if (c.empty() || c == "." || c == "..") return false;
        i = j + 1;
    }
    return true;
}

// No component of root+path (below root) may be a symbolic link.
void no_symlink_on_the_way(const std::string& root, const std::string& path) {
    std::string at = root;
    size_t i = 1;
    while (i <= path.size()) {
        const size_t j = std::min(path.find('/', i), path.size());
        at += "/" + path.substr(i, j - i);
        struct stat st {};
        if (::lstat(at.c_str(), &st) != 0) return;  // absent from here on: nothing to follow
        if (S_ISLNK(st.st_mode)) refuse(fmt::format("{} is a symbolic link", at));
        i = j + 1;
    }
}

// The path a step's plan names (args.path): clean and absolute.
std::string planned_path(const json& args) {
    const std::string p = string_field(args, "path", "the step's plan");
    if (!clean_absolute(p)) refuse(fmt::format("the step's planned path {} is not a plain absolute path", p));
    return p;
}

// A saved copy must be this step's own file in this run's directory.
void expect_saved(const json& rec, const char* key, const RunInfo& run, const std::string& leaf) {
    if (!rec.contains(key)) return;
    const std::string copy = string_field(rec, key, "the undo record's");
    const fs::path p(copy);
    std::error_code e1, e2;
    const auto dir = fs::weakly_canonical(p.parent_path(), e1), own = fs::weakly_canonical(run.dir, e2);
    if (e1 || e2 || dir != own || p.filename() != leaf)
        refuse(fmt::format("saved copy {} is not {}/{} (this run's own copy)", copy, run.dir, leaf));
}

void expect_temp(const json& rec) {
    const std::string t = string_field(rec, "temp", "the undo record's");
    if (t.find('/') != std::string::npos || t.rfind('.', 0) != 0 || t == "." || t == ".." || t.find(".kvmready-") == std::string::npos)
        refuse(fmt::format("temporary name {} is not one kvmready makes", t));
}

void check_file_op(const json& u, const json& args, const RunInfo& run, int step, const std::string& root) {
    const std::string path = planned_path(args);
    if (std::none_of(std::begin(kFileDirs), std::end(kFileDirs), [&](const char* d) { return path.rfind(d, 0) == 0; }))
        refuse(fmt::format("{} is not a file any kvmready fix writes", path));
    if (string_field(u, "path", "the undo record's") != path)
        refuse(fmt::format("it names {}, but the step planned {}", u["path"].get<std::string>(), path));
    expect_temp(u);
    expect_saved(u, "copy", run, fmt::format("step{}.orig", step));
    if (field(u, "existed").is_boolean() && u["existed"].get<bool>() && !u.contains("copy")) refuse("a file that existed has no saved copy");
    if (u.contains("created_dirs")) {
        if (!u["created_dirs"].is_array()) refuse("\"created_dirs\" is not a list");
        for (const auto& d : u["created_dirs"])
            if (!d.is_string() || !clean_absolute(d.get<std::string>()) || path.rfind(d.get<std::string>() + "/", 0) != 0)
                refuse(fmt::format("{} is not a directory above {}", d.dump(), path));
    }
    no_symlink_on_the_way(root, path);
}

// proc.write and node.perms record the path with the root in front.
void check_runtime_path(const json& u, const json& args, const std::string& root, std::initializer_list<const char*> under) {
    const std::string path = planned_path(args);
    if (std::none_of(under.begin(), under.end(), [&](const char* d) { return path.rfind(d, 0) == 0; }))
        refuse(fmt::format("{} is not where this kind of step writes", path));
    if (string_field(u, "path", "the undo record's") != root + path)
        refuse(fmt::format("it names {}, but the step planned {}", u["path"].get<std::string>(), root + path));
    no_symlink_on_the_way(root, path);
}

void check_argv_programs(const json& argv, std::initializer_list<const char*> only = {}) {
    if (!argv.is_array() || argv.empty()) return;
    if (!argv[0].is_string()) refuse("an undo command's program is not a string");
    const std::string prog = argv[0];
    const bool ok = only.size() ? std::any_of(only.begin(), only.end(), [&](const char* p) { return prog == p; }) : undo_program_allowed(prog);
    if (!ok) refuse(fmt::format("{} is not a program kvmready's fixes run to undo a change", prog));
}

void check_command(const json& u, const json& args, const RunInfo& run, int step, const std::string& root) {
    for (const char* key : {"argv", "undo_argv"})
        if (field(u, key) != field(args, key))
            refuse(fmt::format("its {} {} is not the step's {} {}", key, field(u, key).dump(), key, field(args, key).dump()));
    const json& undo_argv = field(args, "undo_argv");
    if (!undo_argv.is_array() || !std::all_of(undo_argv.begin(), undo_argv.end(), [](const json& a) { return a.is_string(); }))
        refuse("the step's undo_argv is not a list of strings");
    check_argv_programs(undo_argv);
    const json& snaps = field(u, "snapshots");
    const json& planned = field(args, "snapshots");
    if (!snaps.is_array() || !planned.is_array() || snaps.size() != planned.size())
        refuse("its snapshots are not the files the step planned to save");
    for (size_t i = 0; i < snaps.size(); ++i) {
        if (!planned[i].is_string() || !kSnapshotFiles.count(planned[i].get<std::string>()))
            refuse(fmt::format("{} is not a file any kvmready fix saves", planned[i].dump()));
        if (field(snaps[i], "path") != planned[i])
            refuse(fmt::format("snapshot {} names {}, but the step planned {}", i, field(snaps[i], "path").dump(), planned[i].dump()));
        expect_saved(snaps[i], "copy", run, fmt::format("step{}.snap{}", step, i));
        expect_saved(snaps[i], "after", run, fmt::format("step{}.after{}", step, i));
        no_symlink_on_the_way(root, planned[i].get<std::string>());
    }
}

void check_record(const std::string& op, const json& u, const json& args, const RunInfo& run, int step, const std::string& root) {
    if (!u.is_object()) refuse("the undo record is not an object");
    if (op == "file.write" || op == "file.remove") {
        check_file_op(u, args, run, step, root);
    } else if (op == "proc.write") {
        check_runtime_path(u, args, root, {"/proc/sys/", "/sys/"});
    } else if (op == "node.perms") {
        check_runtime_path(u, args, root, {"/dev/"});
    } else if (op == "command") {
        check_command(u, args, run, step, root);
    } else if (op == "module.reload") {
        for (const char* key : {"module", "param"})
            if (field(u, key) != field(args, key)) refuse(fmt::format("its {} is not the step's", key));
        const std::string m = string_field(args, "module", "the step's plan");
        if (m != "kvm_intel" && m != "kvm_amd") refuse(fmt::format("{} is not a module any kvmready fix reloads", m));
    } else if (op == "bridge.nm") {
        if (field(u, "undo") != field(args, "undo")) refuse("its undo commands are not the step's");
        const json& cmds = field(u, "undo");
        auto strings = [](const json& a) { return a.is_array() && std::all_of(a.begin(), a.end(), [](const json& x) { return x.is_string(); }); };
        if (!cmds.is_null() && (!cmds.is_array() || !std::all_of(cmds.begin(), cmds.end(), strings)))
            refuse("its undo commands are not lists of strings");
        if (cmds.is_array())
            for (const auto& a : cmds) check_argv_programs(a, {"nmcli"});
    } else if (op == "bridge.link") {
        for (const auto& [key, suffix] : std::map<const char*, const char*>{
                 {"forward_file", "bridge-forward.batch"}, {"reverse_file", "bridge-reverse.batch"}, {"watchdog_log", "bridge-watchdog.log"}})
            expect_saved(u, key, run, fmt::format("step-{}-{}", step, suffix));
        if (u.contains("move"))
            for (const char* key : {"bridge", "uplink"})
                if (args.contains(key) && field(u["move"], key) != args[key]) refuse(fmt::format("its {} is not the step's", key));
    }
    // libvirt and daemon ops act on names through the libvirt API or
    // systemctl, never on a path or an argv taken from the record.
}

}  // namespace

bool undo_program_allowed(const std::string& program) {
    static const std::set<std::string> kPrograms = {"ip", "rmmod", "modprobe", "groupdel", "gpasswd", "update-rc.d"};
    if (kPrograms.count(program)) return true;
    // A libvirt daemon's init script (fixes/libvirt_daemon.cpp: `SCRIPT stop`).
    const std::string dir = "/etc/init.d/";
    if (program.rfind(dir, 0) != 0) return false;
    const std::string name = program.substr(dir.size());
    return name == "libvirtd" ||
           (name.size() > 4 && name.rfind("virt", 0) == 0 && std::all_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; }));
}

void check_undo_records(const RunInfo& run, const std::vector<int>& steps, const std::string& root) {
    struct Seen {
        const JournalEntry* prepare = nullptr;
        const JournalEntry* undo = nullptr;  // the record whose "undo" is used: the newest of prepare and done
    };
    std::map<int, Seen> at;
    for (const auto& e : run.entries) {
        const int n = e.j.value("step", -1);
        if (e.type == "prepare") {
            at[n] = {&e, &e};
        } else if (e.type == "done" && at.count(n) && e.j.contains("undo")) {
            at[n].undo = &e;
        }
    }
    const std::string journal = run.dir + "/journal.jsonl";
    for (int step : steps) {
        auto it = at.find(step);
        if (it == at.end()) continue;
        const JournalEntry& p = *it->second.prepare;
        const JournalEntry& u = *it->second.undo;
        const std::string op = p.j.value("op", "");
        try {
            if (!p.j.contains("args") || !p.j["args"].is_object())
                throw Refusal{fmt::format("the step's plan (\"args\" of its prepare record, line {}) is not recorded", p.line)};
            check_record(op, field(u.j, "undo"), p.j["args"], run, step, root);
        } catch (const Refusal& r) {
            throw DataError(fmt::format("{}:{}: step {} ({}): {}; refusing to undo anything of run {}", journal, u.line, step, op, r.why,
                                        run.id));
        }
    }
}

}  // namespace kvmready::fix
