// The fix journal reader: a journal left by a crash or edited by someone
// may only give DataError (65).
#include <cstdint>
#include <string>

#include "core/errors.hpp"
#include "fixes/journal_read.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        for (const auto& e : kvmready::fix::parse_journal(std::string(reinterpret_cast<const char*>(data), size), "journal.jsonl")) {
            // What the engine reads from every record, with its defaults.
            (void)e.j.value("step", -1);
            (void)e.j.value("op", "");
            (void)e.j.value("status", "");
            (void)e.j.value("root", "");
        }
    } catch (const kvmready::DataError&) {
    }
    return 0;
}
