// kvmready's CPU baseline held to libvirt's own virConnectBaselineHypervisorCPU
// (`virsh hypervisor-cpu-baseline --virttype qemu`: these machines have no
// KVM libvirt can use) of a real libvirtd the test starts, on hosts built
// from real dumps of the CPUID corpus.
//
// libvirt is given each host as a host CPU definition: kvmready's runnable
// model for the CPU's own features plus the features beyond it (a host CPU
// cannot disable features, so the model is one the CPU fully has). The
// feature set libvirt derives from that is the CPU's decoded features, so
// what libvirt decides on its own is the intersection it keeps and the named
// model it picks. "Agrees" means:
//   1. libvirt's result, expanded with the cpu_map (model features plus
//      require, minus disable), is a subset of kvmready's baseline, and every
//      feature only kvmready keeps is one QEMU TCG cannot give guests (not in
//      libvirt's host-model for virt type qemu: libvirt limits a baseline to
//      what the hypervisor it asks supports) or osxsave (an OS-set bit libvirt
//      never passes on). With KVM as the hypervisor the sets would be equal.
//   2. The model: libvirt picks among the models QEMU TCG can run, so it
//      names an older model than kvmready's closest_model() (IvyBridge for
//      Skylake Xeons); held: libvirt's model needs nothing outside its own
//      baseline except what its XML disables.
#include <algorithm>
#include <memory>

#include "compare_support.hpp"
#include "core/xml.hpp"
#include "fleet/cpu_models.hpp"
#include "support/libvirt_daemon.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace kvmready::comparetest;
using kvmready::fleet::FeatureSet;
using kvmready::testsupport::LibvirtDaemon;
using kvmready::testsupport::TempDir;

class CompareLibvirt : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!LibvirtDaemon::unavailable_reason().empty()) return;
        daemon_ = std::make_unique<LibvirtDaemon>();
        daemon_->start();
        dir_ = std::make_unique<TempDir>("kvmready-compare-lv");
    }
    static void TearDownTestSuite() {
        if (daemon_) daemon_->stop();
        daemon_.reset();
        dir_.reset();
    }
    void SetUp() override {
        if (auto why = LibvirtDaemon::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    }
    static inline std::unique_ptr<LibvirtDaemon> daemon_;
    static inline std::unique_ptr<TempDir> dir_;
};

FeatureSet set_of(const nlohmann::json& a) {
    const auto v = a.get<std::vector<std::string>>();
    return {v.begin(), v.end()};
}

// <cpu> host definition of a report's CPU for libvirt.
std::string host_cpu_xml(const nlohmann::json& cpu) {
    const FeatureSet own = set_of(cpu.at("cpu_features").at("features"));
    const std::string vendor = cpu.at("vendor");
    const auto model = kvmready::fleet::runnable_model(own, vendor);
    EXPECT_TRUE(model) << "no runnable model for " << cpu.at("brand");
    std::string out = "<cpu>\n  <arch>x86_64</arch>\n  <model>" + (model ? model->model : "") + "</model>\n  <vendor>" + vendor + "</vendor>\n";
    if (model)
        for (const auto& f : model->require) out += "  <feature name='" + f + "'/>\n";
    return out + "</cpu>\n";
}

TEST_F(CompareLibvirt, BaselineAgreesWithLibvirts) {
    const std::vector<std::vector<std::string>> sets = {
        {"haswell", "skylake"}, {"broadwell", "skylake", "cascadelake"}, {"skylake", "cascadelake"}, {"zen1", "zen2"}, {"zen2", "zen3", "zen4"}};
    // What QEMU TCG can give guests, per libvirt: the host-model of virt type qemu.
    const auto caps = daemon_->virsh({"domcapabilities", "--virttype", "qemu"}, 60000);
    ASSERT_EQ(caps.exit_code, 0) << caps.err;
    std::string cerr;
    const auto croot = kvmready::parse_xml(caps.out, cerr);
    ASSERT_TRUE(croot) << cerr;
    FeatureSet tcg;
    for (const auto* mode : croot->child("cpu")->all("mode")) {
        if (mode->attr("name") != "host-model") continue;
        if (const auto* hm = kvmready::fleet::cpu_map().model(mode->child_text("model"))) tcg = hm->features;
        for (const auto* f : mode->all("feature")) {
            if (f->attr("policy") == "disable") tcg.erase(f->attr("name"));
            else tcg.insert(f->attr("name"));
        }
    }
    ASSERT_FALSE(tcg.empty()) << caps.out;
    for (const auto& set : sets) {
        std::string label;
        for (const auto& k : set) label += k + " ";
        SCOPED_TRACE(label);
        std::vector<std::string> reports;
        std::string xml;  // one <cpu> after another: virsh wraps them itself
        for (const auto& k : set) {
            reports.push_back(report_of(k, dir_->path));
            std::ifstream in(reports.back());
            xml += host_cpu_xml(nlohmann::json::parse(in).at("cpu"));
        }
        const auto file = dir_->path / "cpus.xml";
        std::ofstream(file) << xml;
        const auto lv = daemon_->virsh({"hypervisor-cpu-baseline", "--virttype", "qemu", file.string()}, 60000);
        ASSERT_EQ(lv.exit_code, 0) << lv.err << lv.error << daemon_->log_tail();
        std::string err;
        const auto root = kvmready::parse_xml(lv.out, err);
        ASSERT_TRUE(root) << err << lv.out;
        const auto* m = kvmready::fleet::cpu_map().model(root->child_text("model"));
        ASSERT_NE(m, nullptr) << lv.out;
        FeatureSet libvirt = m->features;
        for (const auto* f : root->all("feature")) {
            if (f->attr("policy") == "disable") libvirt.erase(f->attr("name"));
            else libvirt.insert(f->attr("name"));
        }
        std::vector<std::string> args = {"compare", "--baseline", "--format", "json"};
        args.insert(args.end(), reports.begin(), reports.end());
        const auto ours = run_tool(args);
        ASSERT_EQ(ours.exit_code, 0) << ours.err;
        const auto j = parse(ours.out);
        FeatureSet mine = set_of(j.at("features"));
        std::vector<std::string> only_mine, only_libvirt;
        std::set_difference(mine.begin(), mine.end(), libvirt.begin(), libvirt.end(), std::back_inserter(only_mine));
        std::set_difference(libvirt.begin(), libvirt.end(), mine.begin(), mine.end(), std::back_inserter(only_libvirt));
        EXPECT_TRUE(only_libvirt.empty()) << "only libvirt: " << testing::PrintToString(only_libvirt) << "\nlibvirt said:\n" << lv.out;
        for (const auto& f : only_mine)
            EXPECT_TRUE(f == "osxsave" || !tcg.count(f)) << f << " is in kvmready's baseline and QEMU TCG's host-model, not in libvirt's baseline\n"
                                                         << lv.out;
        // libvirt names a model of those QEMU TCG can run: one needing nothing outside the baseline.
        for (const auto& f : m->features)
            if (!libvirt.count(f)) EXPECT_NE(lv.out.find("name='" + f + "'"), std::string::npos) << root->child_text("model") << " needs " << f;
    }
}

}  // namespace
