// Fixes for the kernel side: modules, nested virtualization, /dev/kvm's
// permissions and the groups that grant them.
#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "checks/common.hpp"
#include "fixes/fixes.hpp"
#include "util/text.hpp"

namespace kvmready::fix {

namespace {

constexpr const char* kHeader = "# Written by `kvmready fix` ({}); `kvmready fix --undo` removes it.\n";

std::string vendor_module_for(const Facts& f) {
    if (!f.cpu.available) return "";
    return checks::vendor_module(checks::cpu_class(cpuid::decode(f.cpu.dump).vendor));
}

bool lists_line(const std::optional<std::string>& text, const std::string& line) {
    if (!text) return false;
    std::istringstream in(*text);
    for (std::string l; std::getline(in, l);)
        if (util::trim(l) == line) return true;
    return false;
}

// New content for a small config file that must hold `line`: the file as it
// is plus the line, or a fresh file with kvmready's header.
std::string with_line(const std::optional<std::string>& cur, const std::string& line, const char* fix_id) {
    if (!cur) return fmt::format(fmt::runtime(kHeader), fix_id) + line + "\n";
    std::string s = *cur;
    if (!s.empty() && s.back() != '\n') s += '\n';
    return s + line + "\n";
}

std::string reasons(const std::vector<const Finding*>& fs) {
    std::string out;
    for (const auto* f : fs) out += (out.empty() ? "" : "; ") + f->id + ": " + f->message;
    return out;
}

std::vector<std::string> ids(const std::vector<const Finding*>& fs) {
    std::vector<std::string> out;
    for (const auto* f : fs) out.push_back(f->id);
    return out;
}

// --root runs programs that edit /etc inside the target (shadow's --root).
std::vector<std::string> shadow_tool(const PlanInput& in, std::string tool, std::vector<std::string> args) {
    std::vector<std::string> argv = {std::move(tool)};
    if (in.offline()) {
        argv.push_back("--root");
        argv.push_back(in.options.root);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// Everything shadow's tools may write besides the databases themselves (their
// backups and lock file), so undo can put the tree back byte for byte.
const std::vector<std::string> kGroupFiles = {"/etc/group", "/etc/gshadow", "/etc/group-", "/etc/gshadow-", "/etc/.pwd.lock"};

bool group_exists(const PlanInput& in, const std::string& name) {
    auto g = in.target_file("/etc/group");
    if (!g) return false;
    return g->rfind(name + ":", 0) == 0 || g->find("\n" + name + ":") != std::string::npos;
}

std::optional<Plan> plan_modules_load(const PlanInput& in) {
    auto want = in.wanting(ids::fix::kvm_modules_load.text);
    const std::string mod = vendor_module_for(in.facts);
    if (mod.empty()) {
        if (!want.empty()) throw std::runtime_error("cannot tell which vendor module this CPU needs (no CPUID)");
        return std::nullopt;
    }
    const std::string conf = "/etc/modules-load.d/kvm.conf";
    const auto cur = in.target_file(conf);
    // Offline (a golden image) the findings describe no running kernel: the
    // file is the whole fix, wanted when it is missing.
    if (want.empty() && !(in.offline() && !lists_line(cur, mod))) return std::nullopt;
    Plan p;
    p.applicability = Applicability::Automatic;
    p.repairs = ids(want);
    p.reason = want.empty() ? fmt::format("{} does not load {} at boot", conf, mod) : reasons(want);
    const ModuleInfo* loaded = nullptr;
    for (const auto& m : in.facts.modules.present)
        if (m.name == mod) loaded = &m;
    if (!loaded && !in.offline()) {
        if (in.facts.modules.modules_disabled)
            throw std::runtime_error("module loading is disabled until reboot (/proc/sys/kernel/modules_disabled = 1)");
        if (std::find(in.facts.modules.installed.begin(), in.facts.modules.installed.end(), mod) == in.facts.modules.installed.end())
            throw std::runtime_error(fmt::format("kernel {} has no {} module to load; install a kernel that ships it", in.facts.kernel.release, mod));
        // Undo takes out what this step loaded and nothing more: `modprobe -r`
        // also unloads unused dependencies, so when kvm was already loaded
        // before (by someone else) only the vendor module goes.
        const bool core_loaded = std::any_of(in.facts.modules.present.begin(), in.facts.modules.present.end(),
                                             [](const ModuleInfo& m) { return m.name == "kvm"; });
        std::vector<std::string> undo = core_loaded ? std::vector<std::string>{"rmmod", mod} : std::vector<std::string>{"modprobe", "-r", mod};
        p.steps.push_back(command({"modprobe", mod}, fmt::format("load {} now", mod), std::move(undo)));
    }
    if (!lists_line(cur, mod)) {
        Step s = write_file(conf, cur, with_line(cur, mod, "kvm.modules-load"));
        s.summary = fmt::format("load {} at every boot ({})", mod, conf);
        p.steps.push_back(std::move(s));
    }
    if (p.steps.empty()) return std::nullopt;
    return p;
}

std::optional<Plan> plan_nested(const PlanInput& in) {
    auto want = in.wanting(ids::fix::kvm_nested.text);
    if (want.empty()) return std::nullopt;
    const ModuleInfo* m = checks::flavour_module(in.facts);
    if (!m || (m->name != "kvm_intel" && m->name != "kvm_amd")) return std::nullopt;
    Plan p;
    p.applicability = Applicability::Confirm;
    p.repairs = ids(want);
    p.reason = reasons(want);
    const std::string conf = "/etc/modprobe.d/kvm-nested.conf";
    const std::string line = fmt::format("options {} nested=1", m->name);
    const auto cur = in.target_file(conf);
    if (!lists_line(cur, line)) {
        Step s = write_file(conf, cur, with_line(cur, line, "kvm.nested"));
        s.summary = fmt::format("enable nested for {} at every module load ({})", m->name, conf);
        p.steps.push_back(std::move(s));
    }
    if (m->builtin) {
        p.needs_reboot = true;
        p.notes.push_back(fmt::format("{} is built into the kernel: add {}.nested=1 to the kernel command line and reboot", m->name, m->name));
        return p;
    }
    // A module with VMs holds references; reloading it would need them all stopped.
    const auto& refcnt = in.config().file("/sys/module/" + m->name + "/refcnt").content;
    const long refs = refcnt ? std::strtol(refcnt->c_str(), nullptr, 10) : -1;
    if (refs == 0) {
        Step s;
        s.op = "module.reload";
        s.summary = fmt::format("reload {} with nested=1 (no VM is using it)", m->name);
        s.runtime = true;
        s.commands = {{"rmmod", m->name}, {"modprobe", m->name, "nested=1"}};
        s.args = {{"module", m->name}, {"param", "nested"}, {"value", "1"}};
        p.steps.push_back(std::move(s));
        p.needs_module_reload = true;
    } else {
        p.notes.push_back(refs > 0 ? fmt::format("{} is in use by {} VM(s): nested takes effect when it next loads (at the latest, the next boot)",
                                                 m->name, refs)
                                   : fmt::format("cannot tell whether VMs use {}: nested takes effect when it next loads", m->name));
        p.needs_reboot = true;
    }
    return p;
}

std::optional<Plan> plan_device_permissions(const PlanInput& in) {
    auto want = in.wanting(ids::fix::kvm_device_permissions.text);
    const std::string rule_path = "/etc/udev/rules.d/65-kvm.rules";
    const std::string rule = "KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"";
    const auto cur = in.target_file(rule_path);
    if (want.empty()) return std::nullopt;
    Plan p;
    p.applicability = Applicability::Confirm;
    p.repairs = ids(want);
    p.reason = reasons(want);
    if (!group_exists(in, "kvm"))
        p.steps.push_back(command(shadow_tool(in, "groupadd", {"--system", "kvm"}), "create the system group kvm", shadow_tool(in, "groupdel", {"kvm"}),
                                  kGroupFiles, false));
    if (!lists_line(cur, rule)) {
        Step s = write_file(rule_path, cur, with_line(cur, rule, "kvm.device-permissions"));
        s.summary = fmt::format("give /dev/kvm to group kvm, mode 0660, at every boot ({})", rule_path);
        p.steps.push_back(std::move(s));
    }
    if (in.facts.device.stat.exists) p.steps.push_back(node_perms("/dev/kvm", 0660, "kvm", "give /dev/kvm to group kvm, mode 0660, now"));
    return p;
}

// The checks say exactly whom to add where ("usermod -aG GROUP USER").
std::optional<Plan> plan_user_groups(const PlanInput& in) {
    // kvm.device-permissions findings also name the usermod that must follow
    // the node's change; one run does both.
    auto want = in.wanting(ids::fix::user_groups.text);
    for (const auto* f : in.wanting(ids::fix::kvm_device_permissions.text)) want.push_back(f);
    std::vector<std::pair<std::string, std::string>> pairs;  // group, user
    static const std::regex usermod(R"(usermod -aG ([A-Za-z0-9_.-]+) ([A-Za-z0-9_.$-]+))");
    for (const auto* f : want)
        for (const auto& c : f->remediation.commands) {
            std::smatch m;
            if (std::regex_search(c, m, usermod)) {
                std::pair<std::string, std::string> gu{m[1], m[2]};
                if (std::find(pairs.begin(), pairs.end(), gu) == pairs.end()) pairs.push_back(gu);
            }
        }
    if (pairs.empty()) return std::nullopt;
    Plan p;
    p.applicability = Applicability::Confirm;
    p.repairs = ids(want);
    p.reason = reasons(want);
    std::set<std::string> users;
    for (const auto& [g, u] : pairs) {
        // kvm.device-permissions, earlier in the same run, creates kvm.
        const bool created_earlier = g == "kvm" && !in.wanting(ids::fix::kvm_device_permissions.text).empty();
        if (!group_exists(in, g) && !created_earlier) {
            p.notes.push_back(fmt::format("group {} does not exist yet (installing libvirt-daemon-system creates libvirt)", g));
            continue;
        }
        p.steps.push_back(command(shadow_tool(in, "usermod", {"-aG", g, u}), fmt::format("add {} to group {}", u, g),
                                  shadow_tool(in, "gpasswd", {"-d", u, g}), kGroupFiles, false));
        users.insert(u);
    }
    if (p.steps.empty()) return std::nullopt;
    p.needs_relogin = true;
    for (const auto& u : users)
        p.notes.push_back(fmt::format("{} holds the new groups from its next login (or `newgrp` in a shell); daemons started as {} "
                                      "need a restart", u, u));
    return p;
}

}  // namespace

FixSpec fix_kvm_modules_load() {
    return {ids::fix::kvm_modules_load.text, "Load the KVM vendor module now and at boot", {ids::kvm_module, ids::kvm_device},
            "modprobe kvm_intel or kvm_amd (whichever this CPU needs) and list it in /etc/modules-load.d/kvm.conf.", plan_modules_load};
}

FixSpec fix_kvm_nested() {
    return {ids::fix::kvm_nested.text, "Enable nested virtualization", {ids::kvm_nested},
            "options kvm_intel|kvm_amd nested=1 in /etc/modprobe.d/kvm-nested.conf; the module is reloaded now only when no VM uses "
            "it, otherwise the setting waits for the next load.",
            plan_nested};
}

FixSpec fix_kvm_device_permissions() {
    return {ids::fix::kvm_device_permissions.text, "Give /dev/kvm to group kvm, mode 0660", {ids::kvm_access, ids::kvm_qemu_user_access, ids::libvirt_domcaps_kvm},
            "Creates group kvm if missing, adds a udev rule (/etc/udev/rules.d/65-kvm.rules) and changes the node now.",
            plan_device_permissions};
}

FixSpec fix_user_groups() {
    return {ids::fix::user_groups.text, "Add users to the kvm and libvirt groups", {ids::kvm_access, ids::kvm_qemu_user_access, ids::libvirt_manage},
            "usermod -aG for each group a check found missing; takes effect at the user's next login.", plan_user_groups};
}

}  // namespace kvmready::fix
