// The hosts an inventory names, so a fleet report can say which of them sent
// no report. Reads what Ansible users have: an INI inventory, a YAML
// inventory, `ansible-inventory --list` JSON, or one host per line. Host
// ranges (web[01:20].example.org, db-[a:c]) are expanded as Ansible does.
// Variables, groups of groups and connection settings are not needed here.
#pragma once

#include <string>
#include <vector>

namespace kvmready::fleet {

// The inventory's host names, each once, in order. Throws DataError (65)
// naming `name` when the text is none of the formats.
std::vector<std::string> parse_inventory(const std::string& text, const std::string& name);

// The file read (bounded) and parsed; NoInputError (66) when it cannot be read.
std::vector<std::string> read_inventory(const std::string& path);

// "web[01:03]" -> web01, web02, web03; a name without a range as is. Throws
// DataError for a malformed range.
std::vector<std::string> expand_host_range(const std::string& pattern);

}  // namespace kvmready::fleet
