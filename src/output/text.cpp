#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "output/output.hpp"
#include "util/utf8.hpp"

namespace kvmready::output {

namespace {

struct Mark {
    const char* unicode;
    const char* ascii;
    const char* color;
};

Mark mark(Status s) {
    switch (s) {
    case Status::Pass: return {"✓", "PASS", "\x1b[32m"};
    case Status::Warn: return {"!", "WARN", "\x1b[33m"};
    case Status::Fail: return {"✗", "FAIL", "\x1b[31m"};
    case Status::Skip: return {"-", "SKIP", "\x1b[2m"};
    case Status::Unknown: return {"?", "UNKN", "\x1b[35m"};
    case Status::Error: return {"☠", "ERR!", "\x1b[31;1m"};
    }
    return {"?", "UNKN", ""};
}

bool locale_is_utf8() {
    for (const char* var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
        const char* v = std::getenv(var);
        if (v && *v) {
            std::string s(v);
            for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
        }
    }
    return false;
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::string evidence_value(const nlohmann::ordered_json& v) {
    if (v.is_string()) return v.get<std::string>();
    return util::dump_json(v);
}

}  // namespace

TextStyle style_for(const std::string& color_flag, bool stdout_is_tty) {
    TextStyle s;
    const char* no_color = std::getenv("NO_COLOR");
    const char* term = std::getenv("TERM");
    if (color_flag == "always") s.color = true;
    else if (color_flag == "never") s.color = false;
    else s.color = stdout_is_tty && !(no_color && *no_color) && !(term && std::strcmp(term, "dumb") == 0);
    s.unicode = color_flag != "never" && locale_is_utf8();
    return s;
}

std::string render_text(const Report& r, const Facts& f, const TextStyle& s) {
    const char* reset = s.color ? "\x1b[0m" : "";
    const char* bold = s.color ? "\x1b[1m" : "";
    const char* dim = s.color ? "\x1b[2m" : "";
    std::string out;
    const std::string verdict_label = [&] {
        switch (r.verdict) {
        case Verdict::Ready: return std::string("ready");
        case Verdict::ReadyWithWarnings: return std::string("ready with warnings");
        case Verdict::NotReady: return std::string("NOT ready");
        case Verdict::Undetermined: return std::string("undetermined");
        case Verdict::Passed: return std::string("selected checks passed");
        case Verdict::PassedWithWarnings: return std::string("selected checks passed with warnings");
        case Verdict::Failed: return std::string("selected checks FAILED");
        }
        return std::string();
    }();
    const Status verdict_status = r.verdict == Verdict::Ready || r.verdict == Verdict::Passed ? Status::Pass
                                  : r.verdict == Verdict::ReadyWithWarnings || r.verdict == Verdict::PassedWithWarnings ? Status::Warn
                                  : r.verdict == Verdict::NotReady || r.verdict == Verdict::Failed ? Status::Fail
                                                                    : Status::Unknown;
    const std::string vcolor = s.color ? mark(verdict_status).color : "";
    if (s.quiet) {
        out += fmt::format("{}{}{}: {}\n", vcolor, verdict_label, reset, r.verdict_text);
        return out;
    }
    const bool recorded = f.source != "live";
    out += fmt::format("{}kvmready {}{} · {} · Linux {}{}\n", bold, KVMREADY_VERSION, reset,
                       f.kernel.hostname.empty() ? std::string("(no hostname)") : f.kernel.hostname,
                       f.kernel.release.empty() ? std::string("?") : f.kernel.release,
                       recorded ? fmt::format(" · RECORDED HOST ({}), not this machine", f.source) : std::string());
    if (!f.source_note.empty()) out += f.source_note + "\n";
    if (f.cpu.source.rfind("dump:", 0) == 0) out += fmt::format("CPU facts from CPUID dump {}\n", f.cpu.source.substr(5));

    size_t id_width = 0;
    for (const auto& x : r.findings) id_width = std::max(id_width, x.id.size());
    std::string category;
    for (const auto& x : r.findings) {
        if (x.category != category) {
            category = x.category;
            out += fmt::format("\n{}{}{}\n", bold, upper(category), reset);
        }
        const Mark m = mark(x.status);
        const std::string sym = s.unicode ? m.unicode : m.ascii;
        out += fmt::format("  {}{}{} {:<{}}  {}\n", s.color ? m.color : "", sym, reset, x.id, id_width, x.message);
        if (s.verbose) {
            out += fmt::format("      {}{} · {}{}\n", dim, x.title, to_string(x.level), reset);
            for (const auto& [k, v] : x.evidence.items()) out += fmt::format("      {}{}: {}{}\n", dim, k, evidence_value(v), reset);
        }
        const bool problem = x.status == Status::Warn || x.status == Status::Fail || x.status == Status::Unknown || x.status == Status::Error;
        if (!problem) continue;
        const auto& rem = x.remediation;
        if (!rem.text.empty()) out += fmt::format("      {} {}\n", s.unicode ? "→" : "->", rem.text);
        for (const auto& c : rem.commands) out += fmt::format("      {}${} {}\n", bold, reset, c);
        if (!rem.fix_id.empty()) out += fmt::format("      {}fix: {} ({}){}\n", dim, rem.fix_id, rem.applicability, reset);
    }
    const auto& sm = r.summary;
    out += fmt::format("\n{} passed, {} warning{}, {} failed, {} skipped, {} unknown, {} error{}\n", sm.pass, sm.warn,
                       sm.warn == 1 ? "" : "s", sm.fail, sm.skip, sm.unknown, sm.error, sm.error == 1 ? "" : "s");
    out += fmt::format("{}Verdict: {}{} — {}\n", bold, vcolor + verdict_label, reset, r.verdict_text);
    if (!r.next_step.empty()) out += fmt::format("Next: {}\n", r.next_step);
    return out;
}

}  // namespace kvmready::output
