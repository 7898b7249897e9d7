// The XML readers (libvirt capabilities, domain XML, rjcp dumps): both the
// own lite parser and the libxml2 one must agree on what they accept.
#include <cstdint>
#include <string>

#include "core/xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string error;
    (void)kvmready::parse_xml_lite(text, error);
    (void)kvmready::parse_xml(text, error);
    return 0;
}
