// Planners are pure: a plan is a function of Facts (ConfigFacts included),
// the findings and the options. So the plan made on a host equals the plan
// made from a recording of it (`check --record` tree, `report` bundle's
// facts), on any machine. Each test would fail if a planner read the host
// itself, or if the probe left out something a planner reads.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/probe.hpp"
#include "core/runner.hpp"
#include "fixes/fix.hpp"
#include "host/host.hpp"
#include "host/recording_host.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace kvmready {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using TempDir = testsupport::TempDir;

json step_json(const fix::Step& s) {
    return {{"op", s.op}, {"summary", s.summary}, {"commands", s.commands}, {"args", s.args}, {"runtime", s.runtime}};
}

json plan_json(const fix::Plan& p) {
    json steps = json::array();
    for (const auto& s : p.steps) steps.push_back(step_json(s));
    return {{"fix_id", p.fix_id},   {"title", p.title},
            {"applicability", fix::to_string(p.applicability)},
            {"repairs", p.repairs}, {"reason", p.reason},
            {"steps", steps},       {"needs_reboot", p.needs_reboot},
            {"needs_module_reload", p.needs_module_reload},
            {"needs_relogin", p.needs_relogin},
            {"notes", p.notes},     {"manual", p.manual}};
}

json plans_json(const fix::PlanSet& s) {
    json plans = json::array(), manual = json::array();
    for (const auto& p : s.plans) plans.push_back(plan_json(p));
    for (const auto& p : s.manual) manual.push_back(plan_json(p));
    return {{"plans", plans}, {"manual", manual}, {"errors", s.errors}};
}

std::vector<std::string> fix_ids(const fix::PlanSet& s) {
    std::vector<std::string> out;
    for (const auto& p : s.plans) out.push_back(p.fix_id);
    return out;
}

void spit(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

ProbeOptions config_probe(const fix::FixOptions& o) {
    ProbeOptions po;
    po.config = true;
    po.config_addresses = true;  // as `fix` on the host itself
    po.request.bridge = o.bridge;
    po.request.network = o.network;
    po.request.pool = o.pool;
    po.uplink = o.uplink;
    po.pool_path = o.pool_path;
    return po;
}

// A recorded host tree (a fixture) with configuration for the sysctl, module
// and bridge fixes: planned from the tree, then from its facts after the
// JSON round trip a bundle's facts.json makes.
TEST(FixReplay, PlansFromFactsJsonEqualPlansFromTheTree) {
    TempDir t;
    const fs::path root = t.path / "tree";
    fs::copy(fs::path(KVMREADY_FIXTURES_DIR) / "no-kvm-module", root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    spit(root / "etc/network/interfaces",
         "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\nauto eth0\niface eth0 inet static\n"
         "    address 192.0.2.10/24\n    gateway 192.0.2.1\n");
    spit(root / "etc/network/interfaces.d/extra", "# nothing here\n");
    spit(root / "etc/sysctl.d/10-local.conf", "vm.nr_hugepages = 2\n");
    spit(root / "etc/sysctl.conf", "# empty\n");

    fix::FixOptions o;
    o.root = root.string();
    o.bridge = "br0";
    o.uplink = "eth0";
    o.hugepages = 4;
    auto h = host::make_rooted_host(root.string());
    const Facts tree = probe(*h, config_probe(o));
    ASSERT_TRUE(tree.config.probed);
    const Report report = run_checks(tree, {});
    const fix::PlanSet a = fix::make_plans(tree, report, o);

    const Facts bundle = facts_from_json(json::parse(facts_to_json(tree).dump()));
    const fix::PlanSet b = fix::make_plans(bundle, report, o);
    EXPECT_EQ(plans_json(a).dump(2), plans_json(b).dump(2));

    // Real plans, not an agreement on nothing: the module, huge pages and
    // the bridge's ifupdown files, with their "before" content from the tree.
    const auto ids = fix_ids(a);
    for (const char* id : {"kvm.modules-load", "memory.hugepages", "net.bridge"})
        EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id << "\n" << plans_json(a).dump(2);
    EXPECT_TRUE(a.errors.empty()) << plans_json(a).dump(2);
    bool edits_interfaces = false;
    for (const auto& p : a.plans)
        for (const auto& s : p.steps)
            if (s.op == "file.write" && s.args.value("path", "") == "/etc/network/interfaces")
                edits_interfaces = s.args["before"].get<std::string>().find("iface eth0 inet static") != std::string::npos;
    EXPECT_TRUE(edits_interfaces) << plans_json(a).dump(2);
}

// Facts without ConfigFacts (a plain `check`, an older bundle): a planner
// cannot fall back to reading the host, it says what is missing.
TEST(FixReplay, PlannerWithoutConfigFactsSaysWhatIsMissing) {
    Facts f;
    Report r;
    Finding want;
    want.id = "kvm.device-permissions";
    want.status = Status::Fail;
    want.message = "/dev/kvm is 0600";
    want.remediation.fix_id = "kvm.device-permissions";
    r.findings.push_back(want);
    fix::FixOptions o;
    o.only = {"kvm.device-permissions"};
    const fix::PlanSet s = fix::make_plans(f, r, o);
    ASSERT_EQ(s.errors.size(), 1u) << plans_json(s).dump(2);
    EXPECT_NE(s.errors[0].find("/etc/udev/rules.d/65-kvm.rules, which the probe did not collect"), std::string::npos) << s.errors[0];
}

// This machine now, and its `check --record` tree replayed: the same plans
// (fix ids, steps, arguments, notes), planned as for a live host both times.
TEST(FixReplay, RecordedTreePlansLikeTheLiveHost) {
    auto live = host::make_live_host();
    host::RecordingHost rec(*live);
    fix::FixOptions o;
    o.bridge = "kvmrpl0";  // does not exist: the bridge fix plans it from the stack's files
    o.hugepages = 1;
    ProbeOptions po = config_probe(o);
    po.record_kernel_log = true;
    po.libvirt_timeout_ms = 2000;
    const Facts a = probe(rec, po);
    TempDir t;
    const fs::path dir = t.path / "tree";
    rec.write(dir.string(), "fix_replay_test");
    auto replay = host::make_rooted_host(dir.string());
    const Facts b = probe(*replay, po);

    const Report ra = run_checks(a, {}), rb = run_checks(b, {});
    std::vector<std::pair<std::string, std::string>> sa, sb;
    for (const auto& f : ra.findings) sa.emplace_back(f.id, to_string(f.status));
    for (const auto& f : rb.findings) sb.emplace_back(f.id, to_string(f.status));
    ASSERT_EQ(sa, sb) << "the recording judges differently: not a planner matter";

    const fix::PlanSet pa = fix::make_plans(a, ra, o), pb = fix::make_plans(b, rb, o);
    EXPECT_EQ(plans_json(pa).dump(2), plans_json(pb).dump(2));
    for (const auto& e : pa.errors) EXPECT_EQ(e.find("did not collect"), std::string::npos) << e;
    // The bridge fix ran on its facts (planned, or refused with a reason of this host's).
    const auto ids = fix_ids(pa);
    const bool bridge_planned = std::find(ids.begin(), ids.end(), "net.bridge") != ids.end() ||
                                std::any_of(pa.errors.begin(), pa.errors.end(), [](const std::string& e) { return e.rfind("net.bridge:", 0) == 0; });
    EXPECT_TRUE(bridge_planned) << plans_json(pa).dump(2);
}

// `kvmready report` puts ConfigFacts in the bundle's facts.json: what
// `fix --from BUNDLE` plans from on another machine.
TEST(FixReplay, ReportBundleCarriesConfigFacts) {
    TempDir t;
    const std::string bundle = (t.path / "r.tar.gz").string();
    const auto r = testsupport::run_captured({KVMREADY_BINARY, "report", "-o", bundle}, 120000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto x = testsupport::run_captured({"/usr/bin/tar", "-xzf", bundle, "-C", t.path.string()}, 60000);
    ASSERT_EQ(x.exit_code, 0) << x.err;
    std::optional<json> facts;
    for (const auto& e : fs::recursive_directory_iterator(t.path))
        if (e.path().filename() == "facts.json") facts = json::parse(std::ifstream(e.path()));
    ASSERT_TRUE(facts) << "no facts.json in the bundle";
    const Facts f = facts_from_json(*facts);
    EXPECT_TRUE(f.config.probed);
    EXPECT_TRUE(f.config.files.count("/etc/group"));
    EXPECT_TRUE(f.config.dirs.count("/etc/sysctl.d"));
    // The host's routes and addresses identify it: never in a bundle.
    EXPECT_FALSE(f.config.files.count("/proc/net/route"));
    EXPECT_FALSE(f.config.files.count("/proc/net/fib_trie"));
    EXPECT_FALSE(f.config.commands.count("ip -j -4 addr show"));
}

}  // namespace
}  // namespace kvmready
