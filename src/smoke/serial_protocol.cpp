#include "smoke/serial_protocol.hpp"

#include <algorithm>

namespace kvmready::smoke {

namespace {

constexpr std::string_view kMarker = "KVMREADY ";

bool is_stage_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

std::vector<std::string_view> split_spaces(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<SerialReport> parse_at(std::string_view rest) {
    const auto tokens = split_spaces(rest);
    if (tokens.size() < 2 || !is_stage_name(tokens[0])) return std::nullopt;
    if (tokens[1] != "ok" && tokens[1] != "fail") return std::nullopt;
    SerialReport r;
    r.stage = std::string(tokens[0]);
    r.ok = tokens[1] == "ok";
    for (size_t i = 2; i < tokens.size(); ++i) {
        const auto eq = tokens[i].find('=');
        if (eq == 0) continue;  // "=x": no key, nothing to keep
        if (eq == std::string_view::npos) r.values.emplace(std::string(tokens[i]), "");
        else r.values.emplace(std::string(tokens[i].substr(0, eq)), std::string(tokens[i].substr(eq + 1)));
    }
    return r;
}

}  // namespace

std::optional<SerialReport> parse_serial_line(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    for (size_t from = 0;;) {
        const auto at = line.find(kMarker, from);
        if (at == std::string_view::npos) return std::nullopt;
        std::string_view rest = line.substr(at + kMarker.size());
        // Control characters (a stray CR, an escape sequence's ESC) would
        // glue themselves to the last value.
        std::string clean;
        clean.reserve(rest.size());
        for (char c : rest) clean += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
        if (auto r = parse_at(clean)) return r;
        from = at + 1;
    }
}

std::vector<SerialReport> SerialLog::feed(std::string_view bytes) {
    seen_ += bytes.size();
    tail_.append(bytes);
    if (tail_.size() > tail_max_) tail_.erase(0, tail_.size() - tail_max_);
    std::vector<SerialReport> out;
    size_t start = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != '\n') continue;
        if (partial_.empty()) {
            if (auto r = parse_serial_line(bytes.substr(start, i - start))) out.push_back(std::move(*r));
        } else {
            partial_.append(bytes.substr(start, i - start));
            if (auto r = parse_serial_line(partial_)) out.push_back(std::move(*r));
            partial_.clear();
        }
        start = i + 1;
    }
    partial_.append(bytes.substr(start));
    // A guest that never sends '\n' must not grow this without bound; a
    // report is far shorter than this.
    if (partial_.size() > 4096) partial_.erase(0, partial_.size() - 4096);
    return out;
}

std::vector<std::string> builtin_guest_stages() { return {"boot", "cpu", "disk", "nic", "done"}; }
std::vector<std::string> linux_guest_stages() { return {"boot", "cpu", "disk", "nic", "net", "done"}; }

StageTracker::StageTracker(std::vector<std::string> required) : required_(std::move(required)) {}

void StageTracker::expect(const std::string& stage, const std::string& key, const std::string& value) {
    expectations_.push_back({stage, key, value});
}

void StageTracker::on_report(const SerialReport& r, double at_ms) {
    for (const auto& s : received_)
        if (s.name == r.stage) return;
    SmokeStage st;
    st.name = r.stage;
    st.at_ms = at_ms;
    st.ms = at_ms - (first_marker_seen() ? last_ms_ : 0);
    st.values = r.values;
    st.status = r.ok ? "pass" : "fail";
    if (!r.ok) {
        const auto reason = r.values.find("reason");
        st.detail = reason != r.values.end() && !reason->second.empty() ? "the guest reported " + reason->second
                                                                         : "the guest reported a failure";
        if (r.stage == "done") {
            const auto f = r.values.find("failed");
            st.detail = f != r.values.end() ? "the guest finished with failed stages: " + f->second : "the guest finished with a failure";
        }
    } else {
        for (const auto& e : expectations_) {
            if (e.stage != r.stage) continue;
            const auto got = r.values.find(e.key);
            if (got != r.values.end() && got->second == e.value) continue;
            st.status = "fail";
            st.detail = got == r.values.end() ? "the guest did not report " + e.key
                                              : "the guest read " + e.key + "=" + got->second + " but the host gave " + e.value;
            host_failures_[r.stage] = e.key == "nonce" ? "wrong_nonce" : e.key == "mac" ? "wrong_mac" : "guest_failure";
        }
    }
    if (first_marker_ms_ < 0) first_marker_ms_ = at_ms;
    last_ms_ = at_ms;
    last_stage_ = r.stage;
    if (r.stage == "done") done_ = true;
    received_.push_back(std::move(st));
}

bool StageTracker::failed() const { return first_failure() != nullptr; }

const SmokeStage* StageTracker::first_failure() const {
    for (const auto& s : received_)
        if (s.status == "fail") return &s;
    return nullptr;
}

std::string StageTracker::failure_class() const {
    const auto* f = first_failure();
    if (!f) return "";
    const auto c = host_failures_.find(f->name);
    return c != host_failures_.end() ? c->second : "guest_failure";
}

bool StageTracker::passed() const {
    if (!done_ || failed()) return false;
    for (const auto& want : required_) {
        const auto it = std::find_if(received_.begin(), received_.end(), [&](const SmokeStage& s) { return s.name == want; });
        if (it == received_.end() || it->status != "pass") return false;
    }
    return true;
}

std::vector<SmokeStage> StageTracker::stages() const {
    std::vector<SmokeStage> out = received_;
    for (const auto& want : required_) {
        const bool seen = std::any_of(received_.begin(), received_.end(), [&](const SmokeStage& s) { return s.name == want; });
        if (seen) continue;
        SmokeStage miss;
        miss.name = want;
        miss.status = "not_reached";
        out.push_back(std::move(miss));
    }
    return out;
}

}  // namespace kvmready::smoke
