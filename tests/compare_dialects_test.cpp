// The printers of `kvmready compare`: each dialect in the syntax its consumer
// parses (libxml2's xmllint for libvirt's XML, Proxmox's and nova's line
// grammars, KubeVirt's YAML shape), with QEMU's names where QEMU reads them.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "core/xml.hpp"
#include "fleet/cpu_models_dialects.hpp"
#include "support/spawn.hpp"
#include "support/temp_dir.hpp"

namespace {

using kvmready::fleet::ModelFit;

ModelFit sample() { return {"Haswell-noTSX-IBRS", {"pclmuldq", "sse4.1", "md-clear"}, {"pcid", "x2apic"}}; }

TEST(CompareDialects, LibvirtXmlIsWellFormedAndSaysWhatItMeans) {
    const std::string xml = kvmready::fleet::libvirt_cpu_xml(sample(), "Intel");
    kvmready::testsupport::TempDir d("kvmready-dialect");
    const auto file = d.path / "cpu.xml";
    std::ofstream(file) << xml;
    if (std::filesystem::exists("/usr/bin/xmllint")) {
        const auto r = kvmready::testsupport::run_captured({"/usr/bin/xmllint", "--noout", file.string()}, 20000);
        EXPECT_EQ(r.exit_code, 0) << r.err << xml;
    }
    std::string err;
    const auto root = kvmready::parse_xml_libxml2(xml, err);
    ASSERT_TRUE(root) << err;
    EXPECT_EQ(root->name, "cpu");
    EXPECT_EQ(root->attr("mode"), "custom");
    EXPECT_EQ(root->attr("match"), "exact");
    EXPECT_EQ(root->child_text("model"), "Haswell-noTSX-IBRS");
    EXPECT_EQ(root->child_text("vendor"), "Intel");
    std::vector<std::string> req, dis;
    for (const auto* f : root->all("feature")) (f->attr("policy") == "require" ? req : dis).push_back(f->attr("name"));
    EXPECT_EQ(req, sample().require);
    EXPECT_EQ(dis, sample().disable);
}

TEST(CompareDialects, ProxmoxUsesQemuNamesAndACustomModelForOtherFlags) {
    // Only flags a VM may set itself: one `cpu:` line.
    const std::string simple = kvmready::fleet::proxmox_cpu({"EPYC-Rome", {"md-clear", "pcid"}, {"aes"}});
    EXPECT_TRUE(std::regex_match(simple, std::regex(R"(cpu: [A-Za-z0-9._-]+(,flags=[+-][a-z0-9._-]+(;[+-][a-z0-9._-]+)*)?\n)"))) << simple;
    EXPECT_EQ(simple, "cpu: EPYC-Rome,flags=+md-clear;+pcid;-aes\n");
    // Anything else: a cpu-models.conf section (QEMU's names: sse4.1 is sse4-1
    // or sse4_1, pclmuldq is pclmulqdq) and the VM naming it.
    const std::string custom = kvmready::fleet::proxmox_cpu(sample());
    EXPECT_NE(custom.find("cpu-model: kvmready-baseline\n    flags +pclmulqdq;+sse4-1;+md-clear;-pcid;-x2apic\n    reported-model Haswell-noTSX-IBRS\n"),
              std::string::npos)
        << custom;
    EXPECT_NE(custom.find("\ncpu: custom-kvmready-baseline\n"), std::string::npos) << custom;
    EXPECT_EQ(kvmready::fleet::proxmox_cpu({"Skylake-Server", {}, {}}), "cpu: Skylake-Server\n");
}

TEST(CompareDialects, NovaConfAndKubeVirtSpec) {
    const std::string nova = kvmready::fleet::nova_conf(sample());
    EXPECT_EQ(nova, "[libvirt]\ncpu_mode = custom\ncpu_models = Haswell-noTSX-IBRS\n"
                    "cpu_model_extra_flags = pclmuldq, sse4.1, md-clear, -pcid, -x2apic\n");
    EXPECT_EQ(kvmready::fleet::nova_conf({"EPYC", {}, {}}).find("cpu_model_extra_flags"), std::string::npos);
    const std::string kv = kvmready::fleet::kubevirt_cpu_yaml(sample());
    EXPECT_EQ(kv.rfind("spec:\n  domain:\n    cpu:\n      model: Haswell-noTSX-IBRS\n      features:\n", 0), 0u) << kv;
    EXPECT_NE(kv.find("        - name: md-clear\n          policy: require\n"), std::string::npos);
    EXPECT_NE(kv.find("        - name: x2apic\n          policy: disable\n"), std::string::npos);
}

}  // namespace
