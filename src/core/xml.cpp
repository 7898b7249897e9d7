#include "core/xml.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "util/dynlib.hpp"
#include "util/text.hpp"

namespace kvmready {

namespace {

using util::trim;

// ---- the small parser --------------------------------------------------------

class Lite {
public:
    explicit Lite(std::string_view in) : s_(in) {}

    std::optional<XmlElement> document(std::string& error) {
        if (s_.substr(0, 3) == "\xEF\xBB\xBF") p_ = 3;
        misc();
        XmlElement root;
        if (!ok_ || !at('<') || !element(root, 0)) return fail(error);
        misc();
        if (!ok_ || p_ != s_.size()) {
            why_ = "content after the root element";
            return fail(error);
        }
        return root;
    }

private:
    std::optional<XmlElement> fail(std::string& error) {
        error = why_.empty() ? "not plain XML" : why_;
        return std::nullopt;
    }
    bool bad(const char* why) {
        if (why_.empty()) why_ = why;
        ok_ = false;
        return false;
    }
    [[nodiscard]] bool at(char c) const { return p_ < s_.size() && s_[p_] == c; }
    [[nodiscard]] bool at(std::string_view t) const { return s_.compare(p_, t.size(), t) == 0; }
    void spaces() {
        while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
    }
    // Skips past the next `end`, false when there is none.
    bool past(std::string_view end) {
        const size_t e = s_.find(end, p_);
        if (e == std::string_view::npos) return bad("unterminated markup");
        p_ = e + end.size();
        return true;
    }
    // Whitespace, comments and processing instructions (the XML declaration)
    // around the root; a DOCTYPE without an internal subset.
    void misc() {
        for (;;) {
            spaces();
            if (at("<!--")) {
                if (!past("-->")) return;
            } else if (at("<?")) {
                if (!past("?>")) return;
            } else if (at("<!DOCTYPE")) {
                const size_t gt = s_.find('>', p_);
                if (gt == std::string_view::npos || s_.substr(p_, gt - p_).find('[') != std::string_view::npos) {
                    bad("a DOCTYPE with an internal subset");
                    return;
                }
                p_ = gt + 1;
            } else {
                return;
            }
        }
    }
    static bool name_char(char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':' || (c & 0x80);
    }
    std::string_view name() {
        const size_t b = p_;
        while (p_ < s_.size() && name_char(s_[p_])) ++p_;
        return s_.substr(b, p_ - b);
    }
    static std::string local(std::string_view qname) {
        const size_t colon = qname.find(':');
        return std::string(colon == std::string_view::npos ? qname : qname.substr(colon + 1));
    }
    static void utf8(uint32_t c, std::string& out) {
        if (c < 0x80) {
            out += static_cast<char>(c);
        } else if (c < 0x800) {
            out += static_cast<char>(0xC0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += static_cast<char>(0xE0 | (c >> 12));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (c >> 18));
            out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    // At '&': one reference, decoded into out.
    bool reference(std::string& out) {
        const size_t semi = s_.find(';', p_);
        if (semi == std::string_view::npos || semi - p_ > 12) return bad("a bad entity reference");
        const std::string_view ref = s_.substr(p_ + 1, semi - p_ - 1);
        p_ = semi + 1;
        if (ref == "lt") out += '<';
        else if (ref == "gt") out += '>';
        else if (ref == "amp") out += '&';
        else if (ref == "quot") out += '"';
        else if (ref == "apos") out += '\'';
        else if (ref.size() > 1 && ref[0] == '#') {
            const bool hex = ref[1] == 'x';
            const std::string_view digits = ref.substr(hex ? 2 : 1);
            uint32_t c = 0;
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), c, hex ? 16 : 10);
            if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || c == 0 || c > 0x10FFFF ||
                (c >= 0xD800 && c <= 0xDFFF))
                return bad("a bad character reference");
            utf8(c, out);
        } else {
            return bad("an entity other than XML's five");  // libxml2 knows what a DTD declares
        }
        return true;
    }
    // Character data up to '<', line ends normalised (\r\n, \r -> \n).
    bool chars(std::string& out) {
        while (p_ < s_.size() && s_[p_] != '<') {
            const char c = s_[p_];
            if (c == '&') {
                if (!reference(out)) return false;
            } else if (c == '\r') {
                out += '\n';
                p_ += at("\r\n") ? 2 : 1;
            } else {
                out += c;
                ++p_;
            }
        }
        return true;
    }
    bool attribute_value(std::string& out) {
        if (!at('"') && !at('\'')) return bad("an unquoted attribute value");
        const char q = s_[p_++];
        while (p_ < s_.size() && s_[p_] != q) {
            const char c = s_[p_];
            if (c == '<') return bad("'<' in an attribute value");
            if (c == '&') {
                if (!reference(out)) return false;
                continue;
            }
            // Attribute-value normalisation: each whitespace character is a space.
            if (c == '\r' && at("\r\n")) ++p_;
            out += (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
            ++p_;
        }
        if (p_ >= s_.size()) return bad("an unterminated attribute value");
        ++p_;
        return true;
    }
    // At '<' of a start tag.
    bool element(XmlElement& e, int depth) {
        if (depth > 256) return bad("nested too deeply");
        ++p_;
        const std::string_view qname = name();
        if (qname.empty()) return bad("a tag without a name");
        e.name = local(qname);
        for (;;) {
            const size_t before = p_;
            spaces();
            if (at("/>")) {
                p_ += 2;
                return true;
            }
            if (at('>')) {
                ++p_;
                break;
            }
            if (p_ == before) return bad("attributes not separated by spaces");
            const std::string_view an = name();
            if (an.empty()) return bad("a malformed attribute");
            spaces();
            if (!at('=')) return bad("an attribute without a value");
            ++p_;
            spaces();
            std::string v;
            if (!attribute_value(v)) return false;
            if (an == "xmlns" || an.substr(0, 6) == "xmlns:") continue;
            const std::string ln = local(an);
            if (e.has_attr(ln)) return bad("a repeated attribute");
            e.attrs.emplace_back(ln, std::move(v));
        }
        for (;;) {
            if (!chars(e.text)) return false;
            if (p_ >= s_.size()) return bad("an unclosed element");
            if (at("</")) {
                p_ += 2;
                if (name() != qname) return bad("mismatched end tag");
                spaces();
                if (!at('>')) return bad("a malformed end tag");
                ++p_;
                return true;
            }
            if (at("<!--")) {
                if (!past("-->")) return false;
            } else if (at("<![CDATA[")) {
                const size_t b = p_ + 9;
                if (!past("]]>")) return false;
                e.text.append(s_.substr(b, p_ - 3 - b));
            } else if (at("<?")) {
                if (!past("?>")) return false;
            } else if (at("<!")) {
                return bad("a declaration inside an element");
            } else {
                e.children.emplace_back();
                if (!element(e.children.back(), depth + 1)) return false;
            }
        }
    }

    std::string_view s_;
    size_t p_ = 0;
    bool ok_ = true;
    std::string why_;
};

// ---- libxml2 -------------------------------------------------------------------

// Loaded only when the small parser declines (src/util/dynlib.hpp).
#define KVMREADY_XML_FUNCTIONS(X) \
    X(xmlReadMemory) \
    X(xmlGetLastError) \
    X(xmlDocGetRootElement) \
    X(xmlFreeDoc)

struct XmlApi {
    KVMREADY_XML_FUNCTIONS(KVMREADY_API_MEMBER)
};

const XmlApi* xml_api(std::string& error) {
    return util::load_api<XmlApi>(
        "libxml2.so.2", "libxml2", [](auto sym, XmlApi& api) { KVMREADY_XML_FUNCTIONS(KVMREADY_API_RESOLVE) }, &error);
}

// Attribute values live in the attribute's text children (no xmlFree needed).
std::string attr_value(const xmlAttr* a) {
    std::string v;
    for (const xmlNode* t = a->children; t; t = t->next)
        if (t->content) v += reinterpret_cast<const char*>(t->content);
    return v;
}

void convert(const xmlNode* n, XmlElement& out) {
    out.name = reinterpret_cast<const char*>(n->name);
    for (const xmlAttr* a = n->properties; a; a = a->next) out.attrs.emplace_back(reinterpret_cast<const char*>(a->name), attr_value(a));
    for (const xmlNode* c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            out.children.emplace_back();
            convert(c, out.children.back());
        } else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            out.text += reinterpret_cast<const char*>(c->content);
        }
    }
}

}  // namespace

std::string XmlElement::attr(const std::string& key) const {
    for (const auto& [k, v] : attrs)
        if (k == key) return v;
    return "";
}

bool XmlElement::has_attr(const std::string& key) const {
    return std::any_of(attrs.begin(), attrs.end(), [&](const auto& a) { return a.first == key; });
}

const XmlElement* XmlElement::child(const std::string& n) const {
    for (const auto& c : children)
        if (c.name == n) return &c;
    return nullptr;
}

std::vector<const XmlElement*> XmlElement::all(const std::string& n) const {
    std::vector<const XmlElement*> out;
    for (const auto& c : children)
        if (c.name == n) out.push_back(&c);
    return out;
}

std::string XmlElement::child_text(const std::string& n) const {
    const XmlElement* c = child(n);
    return c ? trim(c->text) : "";
}

std::vector<std::string> XmlElement::enum_values(const std::string& n) const {
    std::vector<std::string> out;
    for (const auto* e : all("enum"))
        if (e->attr("name") == n)
            for (const auto* v : e->all("value")) out.push_back(trim(v->text));
    return out;
}

std::optional<XmlElement> parse_xml_lite(const std::string& text, std::string& error) { return Lite(text).document(error); }

std::optional<XmlElement> parse_xml_libxml2(const std::string& text, std::string& error) {
    const XmlApi* x = xml_api(error);
    if (!x) return std::nullopt;
    // NONET: never fetch a DTD; libvirt's XML has none anyway.
    xmlDoc* doc = x->xmlReadMemory(text.data(), static_cast<int>(text.size()), "libvirt.xml", nullptr,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError* e = x->xmlGetLastError();
        error = e && e->message ? trim(e->message) : "malformed XML";
        return std::nullopt;
    }
    const xmlNode* root_node = x->xmlDocGetRootElement(doc);
    if (!root_node) {
        x->xmlFreeDoc(doc);
        error = "no root element";
        return std::nullopt;
    }
    XmlElement root;
    convert(root_node, root);
    x->xmlFreeDoc(doc);
    return root;
}

std::optional<XmlElement> parse_xml(const std::string& text, std::string& error) {
    if (auto root = parse_xml_lite(text, error)) return root;
    return parse_xml_libxml2(text, error);
}

}  // namespace kvmready
