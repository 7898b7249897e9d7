// The fix journal reader, and what --undo checks each record against (the
// step it belongs to, fixes/undo_trust.cpp): a journal left by a crash or
// edited by someone may only give DataError (65).
#include <cstdint>
#include <string>

#include "core/errors.hpp"
#include "fixes/engine.hpp"
#include "fixes/journal_read.hpp"
#include "fixes/undo_trust.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        kvmready::fix::RunInfo run;
        run.id = "x";
        // Paths that do not exist: the checks look (lstat), never write.
        run.dir = "/nonexistent-kvmready-fuzz/runs/x";
        run.entries = kvmready::fix::parse_journal(std::string(reinterpret_cast<const char*>(data), size), "journal.jsonl");
        std::vector<int> steps;
        for (const auto& e : run.entries) {
            // What the engine reads from every record, with its defaults.
            steps.push_back(e.j.value("step", -1));
            (void)e.j.value("op", "");
            (void)e.j.value("status", "");
            (void)e.j.value("root", "");
        }
        kvmready::fix::check_undo_records(run, steps, "/nonexistent-kvmready-fuzz/root");
    } catch (const kvmready::DataError&) {
    }
    return 0;
}
