// The small XML parser (src/core/xml.cpp) against libxml2: on libvirt's
// recorded XML and on documents with what libvirt's may hold (comments,
// CDATA, entities, namespaced metadata, CRLF), both give the same tree;
// what the small one declines, libxml2 still reads (or rejects).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/xml.hpp"

namespace {

using namespace kvmready;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void expect_same(const std::string& doc, const std::string& what) {
    std::string e1, e2;
    const auto lite = parse_xml_lite(doc, e1);
    const auto full = parse_xml_libxml2(doc, e2);
    ASSERT_TRUE(full.has_value()) << what << ": libxml2: " << e2;
    ASSERT_TRUE(lite.has_value()) << what << ": " << e1;
    EXPECT_TRUE(*lite == *full) << what;
}

TEST(XmlLite, LibvirtsRecordedXmlParsesLikeLibxml2) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(KVMREADY_FIXTURES_DIR)) {
        if (e.path().extension() != ".xml") continue;
        expect_same(slurp(e.path()), e.path().string());
        ++n;
    }
    EXPECT_GE(n, 5) << "the libvirt fixtures hold capabilities, domain capabilities, a network and a pool";
}

TEST(XmlLite, WhatLibvirtsXmlMayHold) {
    expect_same("<?xml version='1.0' encoding='UTF-8'?>\n<!-- c -->\n<network xmlns:my='http://example.org/x'>\r\n"
                "  <name>def&amp;ault</name><metadata><my:tag my:a='1' b=\"x&#10;y\tz\"><![CDATA[<raw> & ]]>tail</my:tag></metadata>\n"
                "  <description>caf&#xE9; &lt;&gt;&quot;&apos; \xE2\x82\xAC</description><?pi data?><bridge name='virbr0' stp='on' delay='0'/>"
                "<ip address='192.168.122.1'\n netmask='255.255.255.0'><dhcp><range start='a' end='b'/></dhcp></ip></network>\n<!-- end -->\n",
                "handmade network");
    expect_same("\xEF\xBB\xBF<a><b/>  <c x='1'>t<!-- x -->u</c></a>", "BOM, comment splitting text");
    expect_same("<!DOCTYPE a><a/>", "DOCTYPE without a subset");
}

TEST(XmlLite, DeclinesWhatItDoesNotKnowAndLibxml2Decides) {
    std::string err;
    for (const char* doc : {"", "<a>", "<a></b>", "<a b=1/>", "<a b='<'/>", "<a>&nbsp;</a>", "<a>&#xZZ;</a>", "<a/><b/>",
                            "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "<a b='1' b='2'/>"})
        EXPECT_FALSE(parse_xml_lite(doc, err).has_value()) << doc;
    // A DTD's entity is libxml2's to expand: parse_xml falls back to it.
    const auto r = parse_xml("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", err);
    ASSERT_TRUE(r.has_value()) << err;
    EXPECT_EQ(r->name, "a");
    EXPECT_FALSE(parse_xml("<a></b>", err).has_value());
    EXPECT_FALSE(err.empty());
}

}  // namespace
