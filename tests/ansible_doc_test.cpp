// The collection's module documentation (plugins/modules/kvmready_*.yml, the
// sidecar files of the shell modules) as the real ansible-doc reads it: every
// module parses, and every parameter the module accepts (the list kvmready
// itself enforces, cli/ansible_module.cpp) is documented. A YAML slip (a
// colon in a plain scalar turns a line into a mapping) breaks `ansible-doc`
// for the whole module, which this catches.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/ansible_module.hpp"
#include "support/ansible_play.hpp"
#include "support/guest_vm.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace kvmready::testsupport;

TEST(AnsibleDoc, EveryModuleParsesAndDocumentsEveryParameter) {
    const auto doc = find_in_path("ansible-doc");
    if (!doc) GTEST_SKIP() << "ansible-doc is not installed (ansible-core; scripts/dev.sh test installs it)";
    TempDir tmp("kvmready-ansible-doc");
    const auto env = ansible_env(tmp.path);
    for (const std::string m : {"check", "fix", "smoke", "bundle"}) {
        SCOPED_TRACE(m);
        // The page a user reads (its formatter wants every description line a string)...
        const Captured text = run_captured({*doc, "kvmready.host.kvmready_" + m}, 120000, tmp.path.string(), &env);
        EXPECT_EQ(text.exit_code, 0) << text.out << text.err;
        EXPECT_NE(text.out.find("EXAMPLES"), std::string::npos) << text.out << text.err;
        // ...and the data behind it.
        const Captured c = run_captured({*doc, "--json", "kvmready.host.kvmready_" + m}, 120000, tmp.path.string(), &env);
        ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
        const auto j = nlohmann::json::parse(c.out, nullptr, false);
        ASSERT_TRUE(j.is_object()) << c.out;
        const auto& d = j["kvmready.host.kvmready_" + m]["doc"];
        for (const auto& p : kvmready::cli::ansible::module_params(m))
            EXPECT_TRUE(d["options"].contains(p)) << "kvmready_" << m << " accepts '" << p << "' but its documentation does not list it";
        for (const auto& [name, opt] : d["options"].items()) {
            const auto& known = kvmready::cli::ansible::module_params(m);
            EXPECT_NE(std::find(known.begin(), known.end(), name), known.end()) << "documented but refused by kvmready: " << name;
        }
    }
}

}  // namespace
