// Hidden `kvmready __completion bash|zsh|fish`: prints a completion script
// generated from the CLI11 tree this very binary parses with, so the scripts
// cannot drift from the real options (CLI11 has no generator of its own). The
// build writes them into BUILD/completions (cmake/completion.cmake).
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/check.hpp"
#include "core/errors.hpp"
#include "util/text.hpp"
#include "fixes/fix.hpp"

namespace kvmready::cli {

namespace {

// What an option's value (or a positional) completes to.
enum class Values { None, Set, File, Dir, Checks, CheckIds, Fixes, Users };

// The one thing the CLI11 tree does not say: which free-text values are
// paths, ids or users. Keyed by long option / positional name, in every
// subcommand alike. A fixed set (CLI::IsMember) always wins over this.
const std::map<std::string, Values> kValueHints = {
    {"--from", Values::File},    {"--cpuid-dump", Values::File}, {"--output", Values::File}, {"--kernel", Values::File},
    {"--initrd", Values::File},  {"--root", Values::Dir},        {"--record", Values::Dir},  {"--pool-path", Values::Dir},
    {"--only", Values::Fixes},   {"--user", Values::Users},      {"checks", Values::Checks}, {"check-id", Values::CheckIds},
};

struct Opt {
    std::vector<std::string> names;  // "-o", "--output"
    std::string help;
    bool takes_value = false;
    bool repeat = false;
    Values kind = Values::None;
    std::vector<std::string> set;
};

struct Sub {
    std::string name, help;
    std::vector<Opt> opts;
    bool has_positional = false;
    Values positional = Values::None;
    std::vector<std::string> positional_set;
};

struct Model {
    std::vector<Opt> top;
    std::vector<Sub> subs;
    std::vector<std::pair<std::string, std::string>> checks;  // id, title
    std::vector<std::string> categories;
    std::vector<std::pair<std::string, std::string>> fixes;  // id, title
};

// IsMember and friends describe themselves as "{a,b,c}" in the type name
// ("TEXT:{auto,always,never}").
std::vector<std::string> fixed_set(const CLI::Option& o) {
    const std::string t = o.get_type_name();
    const size_t b = t.find('{'), e = t.rfind('}');
    std::vector<std::string> out;
    if (b == std::string::npos || e == std::string::npos || e < b) return out;
    std::string cur;
    for (char c : t.substr(b + 1, e - b - 1)) {
        if (c == ',') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

Values hint_for(const std::string& name) {
    auto it = kValueHints.find(name);
    return it == kValueHints.end() ? Values::None : it->second;
}

Opt make_opt(const CLI::Option& o) {
    Opt r;
    for (const auto& s : o.get_snames()) r.names.push_back("-" + s);
    for (const auto& l : o.get_lnames()) r.names.push_back("--" + l);
    r.help = o.get_description();
    // A flag, or an option whose value may be left out (fix --undo [RUN-ID]):
    // the next word is not its value.
    r.takes_value = o.get_type_size_max() > 0 && o.get_items_expected_min() > 0;
    r.repeat = o.get_items_expected_max() > 1;
    r.set = fixed_set(o);
    if (!r.set.empty()) {
        r.kind = Values::Set;
    } else {
        for (const auto& l : o.get_lnames())
            if (hint_for("--" + l) != Values::None) r.kind = hint_for("--" + l);
    }
    return r;
}

Model build_model(const CLI::App& app) {
    Model m;
    for (const CLI::Option* o : app.get_options())
        if (o->nonpositional()) m.top.push_back(make_opt(*o));
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        if (sub->get_group().empty()) continue;  // hidden: __doc-lists, __completion
        Sub s{sub->get_name(), sub->get_description(), {}, false, Values::None, {}};
        for (const CLI::Option* o : sub->get_options()) {
            if (o->nonpositional()) {
                s.opts.push_back(make_opt(*o));
                continue;
            }
            s.has_positional = true;
            s.positional_set = fixed_set(*o);
            s.positional = s.positional_set.empty() ? hint_for(o->get_name()) : Values::Set;
        }
        m.subs.push_back(std::move(s));
    }
    std::set<std::string> seen;
    for (const auto& c : registry()) {
        m.checks.emplace_back(c.id, c.title);
        if (seen.insert(c.category()).second) m.categories.push_back(c.category());
    }
    for (const auto& f : fix::registry()) m.fixes.emplace_back(f.id, f.title);
    return m;
}

using util::join;

std::vector<std::string> all_names(const std::vector<Opt>& opts) {
    std::vector<std::string> out;
    for (const auto& o : opts) out.insert(out.end(), o.names.begin(), o.names.end());
    return out;
}

std::vector<std::string> ids(const std::vector<std::pair<std::string, std::string>>& v) {
    std::vector<std::string> out;
    for (const auto& [id, title] : v) out.push_back(id);
    return out;
}

std::vector<std::string> selectors(const Model& m) {
    auto out = ids(m.checks);
    out.insert(out.end(), m.categories.begin(), m.categories.end());
    return out;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// ---- bash ------------------------------------------------------------------

// Single-quoted for the shell.
std::string sq(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string bash_values(Values kind, const std::vector<std::string>& set) {
    switch (kind) {
        case Values::Set: return fmt::format("_kvmready_words {}", sq(join(set, " ")));
        case Values::File: return "_kvmready_files";
        case Values::Dir: return "_kvmready_dirs";
        case Values::Checks: return "_kvmready_words \"$_kvmready_selectors\"";
        case Values::CheckIds: return "_kvmready_words \"$_kvmready_check_ids\"";
        case Values::Fixes: return "_kvmready_list \"$_kvmready_fix_ids\"";
        case Values::Users: return "mapfile -t COMPREPLY < <(compgen -u -- \"$cur\")";
        case Values::None: break;
    }
    return ":";
}

std::string bash(const Model& m) {
    std::string s = fmt::format(
        "# bash completion for kvmready                             -*- shell-script -*-\n"
        "# Generated by `kvmready __completion bash` from the tool's own option tree; do not edit.\n"
        "_kvmready_selectors={}\n_kvmready_check_ids={}\n_kvmready_fix_ids={}\n\n",
        sq(join(selectors(m), " ")), sq(join(ids(m.checks), " ")), sq(join(ids(m.fixes), " ")));
    s += R"(_kvmready_words() { mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur"); }
# A comma-separated list (fix --only a,b): completes the part after the last comma.
_kvmready_list() {
    local pre=""
    [[ $cur == *,* ]] && pre=${cur%,*},
    mapfile -t COMPREPLY < <(compgen -P "$pre" -W "$1" -- "${cur##*,}")
}
_kvmready_files() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur"); }
_kvmready_dirs() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur"); }

_kvmready() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev="" sub="" i
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
    # --opt=value: bash splits at '=' (COMP_WORDBREAKS).
    if [[ $cur == = ]]; then
        cur=""
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
)";
    std::vector<std::string> names;
    for (const auto& sub : m.subs) names.push_back(sub.name);
    s += fmt::format("            {}) sub=${{COMP_WORDS[i]}}; break ;;\n", join(names, "|"));
    s += "        esac\n    done\n    case $sub in\n";
    s += fmt::format("    \"\")\n        if [[ $cur == -* ]]; then _kvmready_words {}; else _kvmready_words {}; fi\n        ;;\n",
                     sq(join(all_names(m.top), " ")), sq(join(names, " ")));
    for (const auto& sub : m.subs) {
        s += fmt::format("    {})\n        case $prev in\n", sub.name);
        for (const auto& o : sub.opts)
            if (o.takes_value) s += fmt::format("            {}) {}; return ;;\n", join(o.names, "|"), bash_values(o.kind, o.set));
        s += "        esac\n";
        const std::string opts = sq(join(all_names(sub.opts), " "));
        if (sub.has_positional && sub.positional != Values::None)
            s += fmt::format("        if [[ $cur == -* ]]; then _kvmready_words {}; else {}; fi\n", opts,
                             bash_values(sub.positional, sub.positional_set));
        else
            s += fmt::format("        _kvmready_words {}\n", opts);
        s += "        ;;\n";
    }
    s += "    esac\n}\ncomplete -F _kvmready kvmready\n";
    return s;
}

// ---- zsh -------------------------------------------------------------------

// Text inside an _arguments "[help]".
std::string zsh_help(const std::string& s) {
    std::string out;
    for (char c : first_line(s)) {
        if (c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

std::string zsh_item(const std::string& name, const std::string& help) {
    std::string n;
    for (char c : name) n += c == ':' ? std::string("\\:") : std::string(1, c);
    return sq(n + ":" + first_line(help));
}

std::string zsh_action(Values kind, const std::vector<std::string>& set) {
    switch (kind) {
        case Values::Set: return "(" + join(set, " ") + ")";
        case Values::File: return "_files";
        case Values::Dir: return "_files -/";
        case Values::Checks: return "{_describe -t checks 'check or category' _kvmready_checks -- _kvmready_categories}";
        case Values::CheckIds: return "{_describe -t checks check _kvmready_checks}";
        case Values::Fixes: return "{_sequence -s , compadd - $_kvmready_fix_ids}";
        case Values::Users: return "_users";
        case Values::None: break;
    }
    return " ";
}

std::string zsh_spec(const Opt& o) {
    std::string out;
    const std::string excl = o.repeat ? "*" : (o.names.size() > 1 ? "(" + join(o.names, " ") + ")" : "");
    for (const auto& n : o.names) {
        std::string spec = excl + n;
        if (o.takes_value && n.starts_with("--")) spec += "=";
        spec += "[" + zsh_help(o.help) + "]";
        if (o.takes_value) spec += ":value:" + zsh_action(o.kind, o.set);
        out += " \\\n      " + sq(spec);
    }
    return out;
}

std::string zsh(const Model& m) {
    std::string s =
        "#compdef kvmready\n"
        "# zsh completion for kvmready.\n"
        "# Generated by `kvmready __completion zsh` from the tool's own option tree; do not edit.\n\n";
    s += "_kvmready_checks=(";
    for (const auto& [id, title] : m.checks) s += "\n  " + zsh_item(id, title);
    s += "\n)\n_kvmready_categories=(" + join(m.categories, " ") + ")\n";
    s += "_kvmready_fix_ids=(" + join(ids(m.fixes), " ") + ")\n\n";
    s += "_kvmready() {\n  local curcontext=$curcontext state line ret=1\n  local -a subcommands=(";
    for (const auto& sub : m.subs) s += "\n    " + zsh_item(sub.name, sub.help);
    s += "\n  )\n  _arguments -C";
    for (const auto& o : m.top) {
        for (const auto& n : o.names) s += " \\\n    " + sq("(- *)" + n + "[" + zsh_help(o.help) + "]");
    }
    s += " \\\n    '1: :->subcommand' \\\n    '*:: :->args' && ret=0\n";
    s += "  case $state in\n  subcommand) _describe -t commands 'kvmready command' subcommands && ret=0 ;;\n  args)\n";
    s += "    curcontext=${curcontext%:*:*}:kvmready-$words[1]:\n    case $words[1] in\n";
    for (const auto& sub : m.subs) {
        s += fmt::format("    {}) _arguments -s", sub.name);
        for (const auto& o : sub.opts) s += zsh_spec(o);
        if (sub.has_positional) s += " \\\n      " + sq("*:argument:" + zsh_action(sub.positional, sub.positional_set));
        s += " && ret=0 ;;\n";
    }
    s += "    esac ;;\n  esac\n  return ret\n}\n\n";
    // Autoloaded from $fpath by compinit, or sourced by hand.
    s += "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n  _kvmready \"$@\"\nelse\n  compdef _kvmready kvmready\nfi\n";
    return s;
}

// ---- fish ------------------------------------------------------------------

std::string fq(const std::string& s) {
    std::string out = "'";
    for (char c : first_line(s)) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string fish_values(Values kind, const std::vector<std::string>& set) {
    switch (kind) {
        case Values::Set: return "-x -a " + fq(join(set, " "));
        case Values::File: return "-r -F";
        case Values::Dir: return "-x -a '(__fish_complete_directories (commandline -ct))'";
        case Values::Checks: return "-x -a '(__kvmready_checks; __kvmready_categories)'";
        case Values::CheckIds: return "-x -a '(__kvmready_checks)'";
        case Values::Fixes: return "-x -a '(__fish_complete_list , __kvmready_fixes)'";
        case Values::Users: return "-x -a '(__fish_complete_users)'";
        case Values::None: break;
    }
    return "-x";
}

std::string fish_opt(const std::string& cond, const Opt& o) {
    std::string s = "complete -c kvmready -n " + fq(cond);
    for (const auto& n : o.names) s += n.starts_with("--") ? " -l " + n.substr(2) : " -s " + n.substr(1);
    if (o.takes_value) s += " " + fish_values(o.kind, o.set);
    return s + " -d " + fq(o.help) + "\n";
}

std::string fish(const Model& m) {
    std::string s =
        "# fish completion for kvmready.\n"
        "# Generated by `kvmready __completion fish` from the tool's own option tree; do not edit.\n"
        "complete -c kvmready -f\n\n";
    s += "function __kvmready_checks\n";
    for (const auto& [id, title] : m.checks) s += "    printf '%s\\t%s\\n' " + fq(id) + " " + fq(title) + "\n";
    s += "end\nfunction __kvmready_categories\n    printf '%s\\tcategory\\n' " + join(m.categories, " ") + "\nend\n";
    s += "function __kvmready_fixes\n";
    for (const auto& [id, title] : m.fixes) s += "    printf '%s\\t%s\\n' " + fq(id) + " " + fq(title) + "\n";
    s += "end\n\n";
    for (const auto& o : m.top) s += fish_opt("__fish_use_subcommand", o);
    for (const auto& sub : m.subs)
        s += "complete -c kvmready -n __fish_use_subcommand -a " + sub.name + " -d " + fq(sub.help) + "\n";
    for (const auto& sub : m.subs) {
        const std::string cond = "__fish_seen_subcommand_from " + sub.name;
        s += "\n";
        for (const auto& o : sub.opts) s += fish_opt(cond, o);
        if (sub.has_positional && sub.positional != Values::None) {
            std::string v = fish_values(sub.positional, sub.positional_set);
            if (v.starts_with("-x ")) v = v.substr(3);
            s += "complete -c kvmready -n " + fq(cond) + " " + v + "\n";
        }
    }
    return s;
}

}  // namespace

std::string completion_script(const CLI::App& app, const std::string& shell) {
    const Model m = build_model(app);
    if (shell == "bash") return bash(m);
    if (shell == "zsh") return zsh(m);
    if (shell == "fish") return fish(m);
    throw UsageError(fmt::format("no completion for shell '{}' (bash, zsh or fish)", shell));
}

Action setup_completion(CLI::App& app) {
    auto shell = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("__completion", "");
    sub->group("");
    sub->add_option("shell", *shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
    return [shell, &app] {
        std::cout << completion_script(app, *shell);
        return kExitReady;
    };
}

}  // namespace kvmready::cli
