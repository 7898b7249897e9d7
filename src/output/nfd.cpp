// A Kubernetes Node Feature Discovery feature file (nfd-worker's local
// source reads /etc/kubernetes/node-feature-discovery/features.d/*): one
// `name=value` per line, `#` comments, and the `# +expiry-time=` directive,
// after which the labels vanish unless the file is rewritten, so a node whose
// kvmready timer stopped does not keep advertising an old verdict.
//
// Labels a scheduler can select on, all under kNfdPrefix (NFD's own
// namespace feature.node.kubernetes.io, which nfd-master accepts in every
// configuration): whether KVM is usable, the verdict, the KVM flavour and
// nested virtualization. Values are ids only; reasons stay out (a label value
// is at most 63 characters of [A-Za-z0-9._-]), in `kvmready check`'s output.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/ids.hpp"
#include "output/formats.hpp"

namespace kvmready::output {

namespace {

// A Kubernetes label value: empty, or at most 63 characters, alphanumeric
// at both ends, [-_.A-Za-z0-9] between. Anything else is left out.
bool label_value_ok(const std::string& v) {
    if (v.size() > 63) return false;
    if (v.empty()) return true;
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (!alnum(v.front()) || !alnum(v.back())) return false;
    return std::all_of(v.begin(), v.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

const Finding* finding(const Report& r, const char* id) {
    for (const auto& x : r.findings)
        if (x.id == id) return &x;
    return nullptr;
}

}  // namespace

std::string render_nfd(const Report& r, const Facts& /*f*/, const RunInfo& run) {
    std::vector<std::pair<std::string, std::string>> labels;
    auto add = [&](const char* name, const std::string& value) {
        if (label_value_ok(value)) labels.emplace_back(std::string(kNfdPrefix) + name, value);
    };
    // kvm.api is the ground truth: a pass means guests can be created. A
    // skip means a check it needs failed, so KVM is not usable either. Not
    // judged (or not selected): no label rather than a guess.
    if (const Finding* api = finding(r, ids::kvm_api)) {
        if (api->status == Status::Pass) add("kvm-usable", "true");
        else if (api->status == Status::Fail || api->status == Status::Skip) add("kvm-usable", "false");
        if (api->status == Status::Pass && api->evidence.contains("flavour") && api->evidence["flavour"].is_string()) {
            std::string flavour = api->evidence["flavour"].get<std::string>();
            if (flavour.rfind("kvm_", 0) == 0) flavour = flavour.substr(4);  // kvm_intel -> intel
            add("kvm-flavour", flavour);
        }
    }
    add("verdict", to_string(r.verdict));
    if (const Finding* nested = finding(r, ids::kvm_nested)) {
        if (nested->status == Status::Pass) add("nested", "true");
        else if (nested->status == Status::Warn || nested->status == Status::Fail) add("nested", "false");
    }
    std::string out = fmt::format("# Node features from kvmready {} (Kubernetes Node Feature Discovery, features.d format).\n", KVMREADY_VERSION);
    out += "# Why: run `kvmready check` on the node. Labels vanish at the expiry time unless rewritten.\n";
    out += fmt::format("# +expiry-time={}\n", rfc3339_utc(run.finished_unix + kNfdExpirySeconds));
    for (const auto& [name, value] : labels) out += name + "=" + value + "\n";
    return out;
}

}  // namespace kvmready::output
