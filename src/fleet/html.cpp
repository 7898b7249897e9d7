// The fleet page. Self-contained on purpose: it is mailed, attached to
// tickets and opened from disk on air-gapped admin machines, so it loads
// nothing (inline CSS, no script, a Content-Security-Policy that forbids
// every fetch), and everything that came from a report is escaped: a
// hostname is whatever the host said it was.
#include <fmt/format.h>

#include "fleet/render.hpp"
#include "output/formats.hpp"
#include "util/text.hpp"

namespace kvmready::fleet {

namespace {

std::string esc(const std::string& s) { return util::xml_escape(s); }

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
.counts{display:flex;flex-wrap:wrap;gap:.6em;padding:0;list-style:none}
.counts li{border:1px solid #bbb;border-radius:4px;padding:.4em .8em;min-width:7em}
.counts b{display:block;font-size:1.6em}
.v-ready,.v-passed{background:#e3f4e3}.v-ready_with_warnings,.v-passed_with_warnings{background:#fff6d6}
.v-not_ready,.v-failed{background:#fbe0e0}.v-undetermined{background:#eee}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 5px;text-align:left;vertical-align:top}
#matrix td{text-align:center;min-width:1.4em}#matrix thead th.c{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-weight:normal}
.s-pass{background:#cfeccf}.s-fail{background:#f4b6b6;font-weight:bold}.s-warn{background:#fbe7a6}.s-skip{color:#999}
.s-unknown{background:#e4e4e4}.s-error{background:#d9b3ff}
pre{background:#f5f5f5;padding:.4em;margin:.2em 0;white-space:pre-wrap}
.stale{color:#a05000}.muted{color:#777}details{margin:.3em 0}summary{cursor:pointer}
)";

const char* cell_text(const std::string& status) {
    if (status == "pass") return "ok";
    if (status == "fail") return "X";
    if (status == "warn") return "!";
    if (status == "skip") return "-";
    if (status == "unknown") return "?";
    if (status == "error") return "E";
    return "";
}

// Status names double as CSS classes: only known ones, never report text.
std::string status_class(const std::string& status) {
    for (const char* s : {"pass", "fail", "warn", "skip", "unknown", "error"})
        if (status == s) return std::string("s-") + s;
    return "s-unknown";
}

std::string verdict_class(const std::string& v) {
    for (const char* s : {"ready", "ready_with_warnings", "not_ready", "undetermined", "passed", "passed_with_warnings", "failed"})
        if (v == s) return std::string("v-") + s;
    return "v-undetermined";
}

std::string host_label(const FleetHost& h) { return h.hostname.empty() ? "(no hostname)" : h.hostname; }

std::string age_text(const FleetHost& h, int64_t now) {
    if (!h.when_unix) return "age unknown (the report has no run time)";
    const int64_t age = now - *h.when_unix;
    return age < 0 ? fmt::format("{} (in the future: clock skew?)", h.when) : fmt::format("{} ({} ago)", h.when, human_age(age));
}

void summary(std::string& o, const Fleet& f) {
    o += "<section id=\"summary\"><h2>Verdicts</h2><ul class=\"counts\">\n";
    o += fmt::format("<li id=\"count-hosts\"><b>{}</b> hosts</li>\n", f.hosts.size());
    for (const auto& [v, n] : f.verdicts) o += fmt::format("<li class=\"{}\" id=\"count-{}\"><b>{}</b> {}</li>\n", verdict_class(v), esc(v), n, esc(v));
    o += fmt::format("<li id=\"count-stale\"><b>{}</b> stale</li>\n", f.stale_count());
    if (f.inventory_given) o += fmt::format("<li id=\"count-missing\"><b>{}</b> missing</li>\n", f.missing.size());
    o += fmt::format("<li id=\"count-unreadable\"><b>{}</b> unreadable</li>\n</ul></section>\n", f.unreadable.size());
}

void ranking(std::string& o, const Fleet& f) {
    o += "<section id=\"ranking\"><h2>Failing checks, by hosts blocked</h2>\n";
    if (f.ranked.empty()) o += "<p>No check fails on any host.</p>\n";
    else o += "<ol>\n";
    for (const auto& r : f.ranked) {
        o += fmt::format("<li class=\"rank\"><b class=\"rank-id\">{}</b> ({}) {}: <span class=\"rank-count\">{}</span> host{}", esc(r.id), esc(r.level),
                         esc(r.title), r.hosts.size(), r.hosts.size() == 1 ? "" : "s");
        if (r.warned) o += fmt::format(", warns on {} more", r.warned);
        o += fmt::format("<div class=\"muted\">{}</div>\n", esc(util::join(r.hosts, ", ")));
        for (const auto& x : r.fixes) {
            const std::string text = x.text.empty() && x.commands.empty() ? "(the report gives no fix for it)" : x.text;
            o += fmt::format("<div class=\"fix\">Fix{}: {}", r.fixes.size() > 1 ? fmt::format(" ({} hosts)", x.hosts) : "", esc(text));
            if (!x.fix_id.empty()) o += fmt::format(" <span class=\"muted\">(<code>kvmready fix {}</code>)</span>", esc(x.fix_id));
            if (!x.commands.empty()) o += "<pre>" + esc(util::join(x.commands, "\n")) + "</pre>";
            o += "</div>\n";
        }
        o += "</li>\n";
    }
    if (!f.ranked.empty()) o += "</ol>\n";
    o += "</section>\n";
}

void matrix(std::string& o, const Fleet& f) {
    o += "<section><h2>Hosts &times; checks</h2>\n<p class=\"muted\">ok pass, X fail, ! warn, - skip, ? unknown, E error</p>\n";
    o += "<table id=\"matrix\"><thead><tr><th>Host</th><th>Verdict</th>";
    for (const auto& id : f.check_ids) o += fmt::format("<th class=\"c\" title=\"{}\">{}</th>", esc(f.check_titles.at(id)), esc(id));
    o += "</tr></thead><tbody>\n";
    for (size_t i = 0; i < f.hosts.size(); ++i) {
        const auto& h = f.hosts[i];
        o += fmt::format("<tr><th><a href=\"#host-{}\">{}</a>{}</th><td class=\"{}\">{}</td>", i, esc(host_label(h)), h.stale ? " <span class=\"stale\">(stale)</span>" : "",
                         verdict_class(h.verdict), esc(h.verdict));
        for (const auto& id : f.check_ids) {
            const auto it = h.status.find(id);
            if (it == h.status.end()) o += "<td></td>";
            else o += fmt::format("<td class=\"{}\">{}</td>", status_class(it->second), cell_text(it->second));
        }
        o += "</tr>\n";
    }
    o += "</tbody></table></section>\n";
}

void problems(std::string& o, const Fleet& f) {
    o += fmt::format("<section id=\"stale\"><h2>Stale reports (older than {})</h2>\n", human_age(f.stale_after_seconds));
    if (f.stale_count() == 0) o += "<p>None.</p>\n";
    else o += "<ul>\n";
    for (size_t i = 0; i < f.hosts.size(); ++i)
        if (f.hosts[i].stale)
            o += fmt::format("<li><a href=\"#host-{}\">{}</a>: {}</li>\n", i, esc(host_label(f.hosts[i])), esc(age_text(f.hosts[i], f.generated_unix)));
    if (f.stale_count()) o += "</ul>\n";
    o += "</section>\n";
    if (f.inventory_given) {
        o += "<section id=\"missing\"><h2>Inventory hosts without a report</h2>\n";
        o += f.missing.empty() ? "<p>None.</p>\n" : "<ul>\n";
        for (const auto& m : f.missing) o += "<li>" + esc(m) + "</li>\n";
        if (!f.missing.empty()) o += "</ul>\n";
        o += "</section>\n";
    }
    o += "<section id=\"unreadable\"><h2>Unreadable inputs</h2>\n";
    if (f.unreadable.empty()) o += "<p>None.</p>\n";
    else o += "<table><tr><th>File</th><th>Why</th></tr>\n";
    for (const auto& u : f.unreadable) o += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", esc(u.path), esc(u.error));
    if (!f.unreadable.empty()) o += "</table>\n";
    o += "</section>\n";
}

void host_detail(std::string& o, const FleetHost& h, size_t i, int64_t now) {
    o += fmt::format("<details id=\"host-{}\"{}><summary><b>{}</b> <span class=\"{}\">{}</span>{}</summary>\n", i,
                     ready_verdict(h.verdict) ? "" : " open", esc(host_label(h)), verdict_class(h.verdict), esc(h.verdict),
                     h.stale ? " <span class=\"stale\">stale</span>" : "");
    o += fmt::format("<p>{}</p><table>\n", esc(h.verdict_text));
    o += fmt::format("<tr><th>Host id</th><td>{}</td></tr>\n", h.id.empty() ? "unknown: " + esc(h.id_reason) : esc(h.id));
    o += fmt::format("<tr><th>Kernel</th><td>{}</td></tr>\n", esc(h.kernel));
    o += fmt::format("<tr><th>Reported</th><td>{}</td></tr>\n", esc(age_text(h, now)));
    o += fmt::format("<tr><th>Report</th><td>{} ({})</td></tr>\n", esc(h.path), esc(h.source));
    if (!h.in_inventory) o += "<tr><th>Inventory</th><td>not in the inventory</td></tr>\n";
    if (!h.superseded.empty()) o += fmt::format("<tr><th>Older reports</th><td>{}</td></tr>\n", esc(util::join(h.superseded, ", ")));
    o += "</table>\n";
    if (!h.findings.empty()) {
        o += "<table><tr><th>Check</th><th>Status</th><th>Message</th><th>Fix</th></tr>\n";
        for (const auto& x : h.findings) {
            std::string fix = esc(x.fix_text);
            if (!x.commands.empty()) fix += "<pre>" + esc(util::join(x.commands, "\n")) + "</pre>";
            o += fmt::format("<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>\n", esc(x.id), status_class(x.status), esc(x.status),
                             esc(x.message), fix);
        }
        o += "</table>\n";
    }
    o += "</details>\n";
}

}  // namespace

std::string human_age(int64_t s) {
    if (s < 120) return fmt::format("{}s", s);
    if (s < 7200) return fmt::format("{}m", s / 60);
    if (s < 172800) return s % 3600 / 60 ? fmt::format("{}h {}m", s / 3600, s % 3600 / 60) : fmt::format("{}h", s / 3600);
    return s % 86400 / 3600 ? fmt::format("{}d {}h", s / 86400, s % 86400 / 3600) : fmt::format("{}d", s / 86400);
}

std::string render_html(const Fleet& f) {
    std::string o;
    o.reserve(4096 + f.hosts.size() * (f.check_ids.size() * 30 + 1500));
    o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
    o += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n";
    o += "<meta name=\"viewport\" content=\"width=device-width\">\n<title>kvmready fleet report</title>\n<style>";
    o += kStyle;
    o += "</style></head><body>\n<h1>kvmready fleet report</h1>\n";
    o += fmt::format("<p id=\"generated\">{} hosts, generated {} by kvmready {}; reports older than {} count as stale.</p>\n", f.hosts.size(),
                     output::rfc3339_utc(f.generated_unix), KVMREADY_VERSION, human_age(f.stale_after_seconds));
    summary(o, f);
    ranking(o, f);
    matrix(o, f);
    problems(o, f);
    o += "<section id=\"hosts\"><h2>Hosts</h2>\n";
    for (size_t i = 0; i < f.hosts.size(); ++i) host_detail(o, f.hosts[i], i, f.generated_unix);
    o += "</section>\n</body></html>\n";
    return o;
}

}  // namespace kvmready::fleet
