#include "smoke/report.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace kvmready::smoke {

namespace {

nlohmann::ordered_json ms_or_null(double v) { return v < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v); }

double round1(double v) { return static_cast<double>(static_cast<long long>(v * 10 + (v < 0 ? -0.5 : 0.5))) / 10; }

}  // namespace

nlohmann::ordered_json to_json(const SmokeReport& r) {
    using oj = nlohmann::ordered_json;
    oj j;
    j["passed"] = r.passed;
    j["exit_code"] = r.exit_code;
    j["verdict"] = r.verdict;
    if (!r.diagnosis.empty()) j["diagnosis"] = r.diagnosis;
    j["accel_requested"] = r.accel_requested;
    j["accel_used"] = r.accel_used;
    j["total_ms"] = round1(r.total_ms);
    j["verdict_ms"] = round1(r.verdict_ms);
    oj steps = oj::array();
    for (const auto& s : r.steps) {
        oj o;
        o["id"] = s.id;
        o["name"] = s.name;
        o["accel"] = s.accel;
        o["ran"] = s.ran;
        o["passed"] = s.passed;
        o["failure"] = s.failure.empty() ? oj(nullptr) : oj(s.failure);
        o["message"] = s.message;
        o["elapsed_ms"] = round1(s.elapsed_ms);
        o["split"] = {{"prepare_ms", round1(s.split.prepare_ms)},
                      {"start_ms", round1(s.split.start_ms)},
                      {"boot_ms", ms_or_null(s.split.boot_ms < 0 ? -1 : round1(s.split.boot_ms))},
                      {"stages_ms", ms_or_null(s.split.stages_ms < 0 ? -1 : round1(s.split.stages_ms))},
                      {"teardown_ms", round1(s.split.teardown_ms)}};
        oj stages = oj::array();
        for (const auto& st : s.stages) {
            oj so;
            so["name"] = st.name;
            so["status"] = st.status;
            so["at_ms"] = round1(st.at_ms);
            so["ms"] = round1(st.ms);
            if (!st.detail.empty()) so["detail"] = st.detail;
            if (!st.values.empty()) so["values"] = st.values;
            stages.push_back(so);
        }
        o["stages"] = stages;
        o["last_stage"] = s.last_stage;
        if (!s.serial_tail.empty()) o["serial_tail"] = s.serial_tail;
        if (!s.qemu_log_tail.empty()) o["qemu_log_tail"] = s.qemu_log_tail;
        o["details"] = s.details;
        steps.push_back(o);
    }
    j["steps"] = steps;
    if (!r.kept.empty()) {
        j["kept"] = r.kept;
        j["cleanup_commands"] = r.cleanup_commands;
    }
    return j;
}

std::string render_text(const SmokeReport& r, bool color) {
    const char* green = color ? "\x1b[32m" : "";
    const char* red = color ? "\x1b[31m" : "";
    const char* dim = color ? "\x1b[2m" : "";
    const char* reset = color ? "\x1b[0m" : "";
    std::string out;
    for (const auto& s : r.steps) {
        const char* c = !s.ran ? dim : s.passed ? green : red;
        const char* word = !s.ran ? "SKIP" : s.passed ? "PASS" : "FAIL";
        out += fmt::format("{}{}{} ({}) {} [{}] {:.0f} ms", c, word, reset, s.id, s.name, s.accel, s.elapsed_ms);
        if (!s.message.empty()) out += ": " + s.message;
        out += "\n";
        if (s.ran && (s.split.start_ms > 0 || s.split.boot_ms >= 0))
            out += fmt::format("    {}prepare {:.0f} ms, start {:.0f} ms, boot {}, stages {}, teardown {:.0f} ms{}\n", dim,
                               s.split.prepare_ms, s.split.start_ms,
                               s.split.boot_ms < 0 ? std::string("-") : fmt::format("{:.0f} ms", s.split.boot_ms),
                               s.split.stages_ms < 0 ? std::string("-") : fmt::format("{:.0f} ms", s.split.stages_ms),
                               s.split.teardown_ms, reset);
        for (const auto& st : s.stages) {
            const char* sc = st.status == "pass" ? green : st.status == "fail" ? red : dim;
            out += fmt::format("    {}{:<4}{} {:<5} +{:.0f} ms (at {:.0f} ms){}\n", sc,
                               st.status == "pass" ? "ok" : st.status == "fail" ? "FAIL" : "--", reset, st.name, st.ms, st.at_ms,
                               st.detail.empty() ? "" : "  " + st.detail);
        }
        if (!s.passed && s.ran && !s.serial_tail.empty()) {
            out += "    serial console (last lines):\n";
            std::string tail = s.serial_tail;
            // The last ~12 lines are what an admin reads; JSON keeps 4 KiB.
            size_t pos = tail.size();
            for (int n = 0; n < 13 && pos != std::string::npos && pos > 0; ++n) pos = tail.rfind('\n', pos - 1);
            if (pos != std::string::npos && pos > 0) tail = tail.substr(pos + 1);
            size_t start = 0;
            while (start < tail.size()) {
                size_t nl = tail.find('\n', start);
                if (nl == std::string::npos) nl = tail.size();
                std::string line = tail.substr(start, nl - start);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                out += fmt::format("      | {}\n", line);
                start = nl + 1;
            }
        } else if (!s.passed && s.ran && s.split.start_ms > 0 && s.serial_tail.empty()) {
            out += "    serial console: (empty)\n";
        }
        if (!s.passed && !s.qemu_log_tail.empty() && s.qemu_log_tail.find("error") != std::string::npos)
            out += fmt::format("    QEMU log (tail):\n      {}\n", s.qemu_log_tail.substr(s.qemu_log_tail.size() > 600 ? s.qemu_log_tail.size() - 600 : 0));
    }
    if (!r.diagnosis.empty()) out += "\n" + r.diagnosis + "\n";
    out += fmt::format("\n{}{}{} (in {:.0f} ms)\n", r.passed ? green : red, r.verdict, reset, r.total_ms);
    if (!r.kept.empty()) {
        out += "\nKept for debugging (--keep):\n";
        for (const auto& k : r.kept) out += "  " + k + "\n";
        out += "Remove with:\n";
        for (const auto& c : r.cleanup_commands) out += "  " + c + "\n";
    }
    return out;
}

SmokeFacts summarize(const SmokeReport& r, const std::string& uri) {
    SmokeFacts f;
    f.ran = true;
    f.passed = r.passed;
    f.exit_code = r.exit_code;
    f.verdict = r.verdict;
    f.diagnosis = r.diagnosis;
    f.accel_requested = r.accel_requested;
    f.accel_used = r.accel_used;
    f.uri = uri;
    f.total_ms = round1(r.total_ms);
    for (const auto& s : r.steps) {
        f.steps.push_back(fmt::format("{} {} [{}] {} {:.0f} ms", s.id, s.name, s.accel, !s.ran ? "skip" : s.passed ? "pass" : "fail",
                                      s.elapsed_ms));
        if (s.details.contains("flavour") && s.details["flavour"] == "kvm_pvm") f.kvm_flavour_pvm = true;
        if (s.ran && !s.passed && !s.failure.empty() && s.id != "a") {
            // The last failure is the one that decided (a TCG rerun comes after the KVM one).
            f.failed_step = fmt::format("{} {} [{}]", s.id, s.name, s.accel);
            f.failure = s.failure;
            f.failure_message = s.message;
        }
    }
    return f;
}

int smoke_exit_code(const SmokeReport& r) {
    if (r.passed) return kExitReady;
    // The step that decided the verdict is the last one that ran.
    for (auto it = r.steps.rbegin(); it != r.steps.rend(); ++it) {
        if (!it->ran && it->failure.empty()) continue;
        if (it->failure == "prerequisite") return kExitUnavailable;
        if (it->failure == "not_permitted") return kExitNoPerm;
        break;
    }
    return kExitNotReady;
}

}  // namespace kvmready::smoke
