#include <iostream>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "core/check.hpp"
#include "core/errors.hpp"
#include "core/runner.hpp"

namespace kvmready::cli {

Action setup_explain(CLI::App& app) {
    auto id = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("explain", "Explain a check: what it reads, why it matters, how to fix it.");
    sub->add_option("check-id", *id, "Check id, e.g. kvm.access (see `kvmready check --list`)")->required();
    return [id] {
        const CheckSpec* c = find_check(*id);
        if (!c) throw UsageError(fmt::format("unknown check '{}' (see `kvmready check --list`)", *id));
        std::string deps;
        for (const char* d : c->depends_on) deps += (deps.empty() ? "" : ", ") + std::string(d);
        std::cout << fmt::format("{} — {}\nLevel: {}{}\n\nReads:\n  {}\n\nWhy it matters:\n  {}\n\nHow to fix:\n  {}\n", c->id, c->title,
                                 to_string(c->level), deps.empty() ? "" : "\nDepends on: " + deps, c->reads, c->why, c->fix);
        return kExitReady;
    };
}

}  // namespace kvmready::cli
