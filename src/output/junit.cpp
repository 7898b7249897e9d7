// JUnit XML for CI pipelines (the schema Jenkins, GitLab and junitparser
// read): one <testsuite> per check category, one <testcase> per check.
// A check that counts against the verdict is a <failure>; one that could not
// be judged an <error>; a skipped one <skipped>; warnings (and failed
// optional checks, which never change the verdict) pass with the warning in
// <system-out>, or fail as type="warning" under --strict, as the exit code does.
// Written by hand: text goes through util::xml_escape after control
// characters, which XML 1.0 cannot carry even escaped, are spelt \xHH.
#include <fmt/format.h>

#include "output/formats.hpp"
#include "util/text.hpp"
#include "util/utf8.hpp"

namespace kvmready::output {

namespace {

std::string xml_text(const std::string& s) {
    std::string o;
    for (char c : util::escape_bytes(s)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 && c != '\n' && c != '\t' && c != '\r') o += fmt::format("\\x{:02x}", u);
        else if (u == 0x7f) o += "\\x7f";
        else o += c;
    }
    return util::xml_escape(o);
}

// The remediation as the body of a failure: text, then each command.
std::string remedy(const Finding& x) {
    std::string body = x.remediation.text;
    for (const auto& c : x.remediation.commands) body += (body.empty() ? "$ " : "\n$ ") + c;
    return body;
}

bool warning_only(const Finding& x) { return x.status == Status::Warn || (x.status == Status::Fail && x.level == Level::Optional); }

struct Counts {
    int tests = 0, failures = 0, errors = 0, skipped = 0;
};

Counts tally(const std::vector<const Finding*>& xs, bool strict) {
    Counts c;
    for (const Finding* x : xs) {
        ++c.tests;
        if (warning_only(*x)) c.failures += strict ? 1 : 0;
        else if (x->status == Status::Fail) ++c.failures;
        else if (x->status == Status::Unknown || x->status == Status::Error) ++c.errors;
        else if (x->status == Status::Skip) ++c.skipped;
    }
    return c;
}

std::string testcase(const Finding& x, bool strict) {
    std::string out = fmt::format("    <testcase classname=\"kvmready.{}\" name=\"{}\" time=\"0\">\n", xml_text(x.category), xml_text(x.id));
    const std::string msg = xml_text(x.message);
    const std::string body = xml_text(remedy(x));
    if (warning_only(x) && strict) {
        out += fmt::format("      <failure message=\"{}\" type=\"warning\">{}</failure>\n", msg, body);
    } else if (warning_only(x)) {
        out += fmt::format("      <system-out>warning: {}{}</system-out>\n", msg, body.empty() ? "" : "\n" + body);
    } else if (x.status == Status::Fail) {
        out += fmt::format("      <failure message=\"{}\" type=\"fail\">{}</failure>\n", msg, body);
    } else if (x.status == Status::Unknown || x.status == Status::Error) {
        out += fmt::format("      <error message=\"{}\" type=\"{}\">{}</error>\n", msg, to_string(x.status), body);
    } else if (x.status == Status::Skip) {
        out += fmt::format("      <skipped message=\"{}\"/>\n", msg);
    } else {
        out += fmt::format("      <system-out>{}</system-out>\n", msg);
    }
    return out + "    </testcase>\n";
}

}  // namespace

std::string render_junit(const Report& r, const Facts& f, const RunInfo& run) {
    // Categories in registry order, as the findings come.
    std::vector<std::pair<std::string, std::vector<const Finding*>>> suites;
    std::vector<const Finding*> all;
    for (const auto& x : r.findings) {
        if (suites.empty() || suites.back().first != x.category) suites.push_back({x.category, {}});
        suites.back().second.push_back(&x);
        all.push_back(&x);
    }
    const std::string stamp = rfc3339_utc(run.finished_unix);
    const std::string host = xml_text(f.kernel.hostname);
    const Counts t = tally(all, run.strict);
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += fmt::format("<testsuites name=\"kvmready\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3f}\" timestamp=\"{}\">\n",
                       t.tests, t.failures, t.errors, t.skipped, run.duration_seconds, stamp);
    for (const auto& [category, xs] : suites) {
        const Counts c = tally(xs, run.strict);
        out += fmt::format(
            "  <testsuite name=\"kvmready.{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"0\" timestamp=\"{}\" hostname=\"{}\">\n",
            xml_text(category), c.tests, c.failures, c.errors, c.skipped, stamp, host);
        for (const Finding* x : xs) out += testcase(*x, run.strict);
        out += "  </testsuite>\n";
    }
    out += "</testsuites>\n";
    return out;
}

}  // namespace kvmready::output
