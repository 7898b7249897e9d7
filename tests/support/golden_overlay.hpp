// Golden outputs of `kvmready check` stored as overlays on a few base outputs.
//
// Most fixture cases print what a sibling case prints, except for a few
// checks. So, as the fixture trees themselves (fixture_overlay.py), a case's
// golden text and JSON are stored either complete (a base: tests/golden/
// CASE.txt and CASE.json) or as one overlay file, tests/golden/CASE.overlay.json,
// holding only what differs from the output of the case it names as "base":
//
//   {
//     "base": "intel_vtx",         the case it starts from (complete or itself an overlay)
//     "only": ["kvm.device"],      the checks reported, in order, when not the base's (selections)
//     "fields": {"verdict": ...},  top-level JSON members that differ ("checks" and "summary" excepted)
//     "text_head": [lines],        text lines before the first category, when they differ
//     "text_tail": [lines],        text lines after the summary line (verdict, next step), when they differ
//     "checks": {                  per check that differs from the base's:
//       "kvm.device": {"json": {the whole entry}, "text": [its lines]}
//     }
//   }
//
// What is not stored is derived, exactly as the renderers lay it out: the
// JSON summary and the text summary line are counted from the checks, the
// text's category headings come from the check ids, and its id column is as
// wide as the longest id present (a check's text lines are stored with the
// message two spaces after its id). So adding a check changes the base files,
// and an overlay only where the new check's entry differs from the base's.
// Composition is exact: the composed output is compared with the real one
// byte for byte, and an output that would not compose back to itself is
// refused when the overlay is made.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kvmready::testsupport::golden {

// One case's complete output: `check --color=never` and `check --json`.
struct Outputs {
    std::string text, json;
};

// The overlay that turns `base` into `actual`, naming `base_name` as its
// base. Throws std::runtime_error when `actual` cannot be stored so (an
// output whose layout the composition does not reproduce).
nlohmann::ordered_json make_overlay(const std::string& base_name, const Outputs& base, const Outputs& actual);

// The complete output `overlay` describes on top of `base`. Throws
// std::runtime_error naming what is inconsistent.
Outputs compose(const Outputs& base, const nlohmann::ordered_json& overlay);

// An overlay as stored: JSON, two-space indent, UTF-8 as is, final newline.
std::string overlay_file_text(const nlohmann::ordered_json& overlay);

// A `check --json` output with the members that differ from run to run
// (run.started, run.duration_ms) set to fixed values (kRunStarted, 0), so
// goldens and two runs compare byte for byte. Everything else, run.recorded_at
// included, is left as printed.
inline constexpr const char* kRunStarted = "2000-01-01T00:00:00Z";
std::string normalise_run(const std::string& json_text);

}  // namespace kvmready::testsupport::golden
