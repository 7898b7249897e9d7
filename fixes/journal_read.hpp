// Reading a fix journal's text: one JSON object per line, each checked for
// the fields and types the engine relies on. Separate from the engine so the
// fuzz harness (fuzz/) compiles this alone.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmready::fix {

// One line of the journal, parsed.
struct JournalEntry {
    std::string type;  // run, prepare, done, failed, skipped, end, undone, undo-failed, undo-end, resumed
    nlohmann::json j;
    int line = 0;      // 1-based, in the journal's text (for messages naming path:line)
};

// The records of a journal's text. A line that is not JSON at all (cut by a
// kill during a write) is skipped: everything before it stands. A record of
// the wrong shape throws DataError (65) naming path:line.
std::vector<JournalEntry> parse_journal(const std::string& text, const std::string& path);

}  // namespace kvmready::fix
