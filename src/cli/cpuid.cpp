#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/errors.hpp"
#include "host/host.hpp"
#include "util/utf8.hpp"

namespace kvmready::cli {

namespace {

struct CpuidOptions {
    std::string from;
    bool json = false;
    bool raw = false;
};

int run_cpuid(const CpuidOptions& o) {
    cpuid::Dump dump = o.from.empty() ? host::make_live_host()->cpuid() : load_cpuid_dump(o.from);
    if (o.raw) {
        std::cout << cpuid::to_cpuid_r(dump);
        return kExitReady;
    }
    const auto d = cpuid::decode(dump);
    auto j = cpuid::to_json(d);
    if (o.json) {
        j["source"] = o.from.empty() ? "live" : o.from;
        j["format"] = dump.format;
        std::cout << util::dump_json(j, 2) << "\n";
        return kExitReady;
    }
    std::cout << util::escape_bytes(fmt::format("source: {} ({})\n", o.from.empty() ? "live CPU" : o.from, dump.format));
    for (const auto& [k, v] : j.items()) {
        std::string val = v.is_string() ? v.get<std::string>() : v.is_null() ? "-" : util::dump_json(v);
        std::cout << util::escape_bytes(fmt::format("{:<18} {}\n", k + ":", val));
    }
    return kExitReady;
}

}  // namespace

Action setup_cpuid(CLI::App& app) {
    auto o = std::make_shared<CpuidOptions>();
    auto* sub = app.add_subcommand("cpuid", "Decode the live CPU's CPUID, or a CPUID dump a customer sent.");
    sub->add_option("--from", o->from, "Dump file: `cpuid -r`, AIDA64/InstLatX64, libcpuid raw and others (auto-detected)");
    sub->add_flag("--json", o->json, "Print JSON");
    sub->add_flag("--raw", o->raw, "Print the registers in `cpuid -r` format (to send as a dump)");
    sub->get_option("--json")->excludes("--raw");
    return [o] { return run_cpuid(*o); };
}

}  // namespace kvmready::cli
