// libvirt's XML (capabilities, domain capabilities, networks, pools) as a
// small tree the probe's parsers walk.
//
// parse_xml reads it with a small parser of its own first: libvirt writes
// plain, well-formed XML (elements, attributes, the five named entities and
// character references; comments, CDATA and namespaced metadata at most),
// and loading libxml2 costs ~1.2 ms here (it pulls in ICU and libstdc++.so),
// right after libvirt answered, at the end of a check's critical path.
// Whatever that parser does not accept goes to libxml2 (dlopen()ed then), so
// odd but valid documents still parse and broken ones get libxml2's error.
// Held to libxml2 by tests/xml_test.cpp; what it buys: bench/xml_bench.cpp.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmready {

struct XmlElement {
    std::string name;  // local name (a namespace prefix dropped), as libxml2's node name
    std::vector<std::pair<std::string, std::string>> attrs;  // xmlns declarations excluded
    std::string text;  // concatenated character data (text and CDATA) directly inside
    std::vector<XmlElement> children;

    [[nodiscard]] std::string attr(const std::string& key) const;
    [[nodiscard]] bool has_attr(const std::string& key) const;
    [[nodiscard]] const XmlElement* child(const std::string& n) const;
    [[nodiscard]] std::vector<const XmlElement*> all(const std::string& n) const;
    // trim()med text of the first child named n, "" without one.
    [[nodiscard]] std::string child_text(const std::string& n) const;
    // <enum name='NAME'><value>...</value></enum> among the children.
    [[nodiscard]] std::vector<std::string> enum_values(const std::string& n) const;

    friend bool operator==(const XmlElement&, const XmlElement&) = default;
};

// The small parser alone: nullopt (and why) for anything it does not accept.
std::optional<XmlElement> parse_xml_lite(const std::string& text, std::string& error);
// libxml2 alone (loaded on first use).
std::optional<XmlElement> parse_xml_libxml2(const std::string& text, std::string& error);
// The small parser, else libxml2.
std::optional<XmlElement> parse_xml(const std::string& text, std::string& error);

}  // namespace kvmready
