#include "fleet/cpu_models.hpp"

#include <algorithm>
#include <cstdlib>

#include "core/xml.hpp"
#include "fleet/cpu_map_data.hpp"

namespace kvmready::fleet {

namespace {

uint64_t hex(const std::string& s) { return s.empty() ? 0 : std::strtoull(s.c_str(), nullptr, 0); }

void add_feature(CpuMap& m, const XmlElement& e) {
    FeatureDef f;
    f.name = e.attr("name");
    f.qemu_name = f.name;
    for (const auto* a : e.all("alias"))
        if (a->attr("source") == "qemu") {
            f.qemu_name = a->attr("name");
            break;
        }
    if (const auto* c = e.child("cpuid")) {
        f.has_cpuid = true;
        f.leaf = static_cast<uint32_t>(hex(c->attr("eax_in")));
        f.subleaf = static_cast<uint32_t>(hex(c->attr("ecx_in")));
        const char* regs[4] = {"eax", "ebx", "ecx", "edx"};
        for (int i = 0; i < 4; ++i) f.regs[i] = static_cast<uint32_t>(hex(c->attr(regs[i])));
    }
    if (const auto* r = e.child("msr")) {
        f.has_msr = true;
        f.msr = static_cast<uint32_t>(hex(r->attr("index")));
        f.msr_mask = hex(r->attr("edx")) << 32 | hex(r->attr("eax"));
    }
    if (!f.name.empty() && (f.has_cpuid || f.has_msr)) m.features.push_back(std::move(f));
}

void add_model(CpuMap& m, const XmlElement& e) {
    ModelDef d;
    d.name = e.attr("name");
    if (const auto* dec = e.child("decode")) d.decode_guest = dec->attr("guest") != "off";
    if (const auto* v = e.child("vendor")) d.vendor = v->attr("name");
    for (const auto* s : e.all("signature"))
        d.signatures.emplace_back(static_cast<unsigned>(hex(s->attr("family"))), static_cast<unsigned>(hex(s->attr("model"))));
    for (const auto* f : e.all("feature")) d.features.insert(f->attr("name"));
    if (!d.name.empty()) m.models.push_back(std::move(d));
}

void add_file(CpuMap& m, const std::string& name, std::string_view text) {
    std::string err;
    auto root = parse_xml(std::string(text), err);
    if (!root) {
        m.error += (m.error.empty() ? "" : "; ") + name + ": " + err;
        return;
    }
    for (const auto& c : root->children) {
        if (c.name == "feature") add_feature(m, c);
        else if (c.name == "model") add_model(m, c);
        else if (c.name == "vendor") m.vendors[c.attr("string")] = c.attr("name");
    }
}

CpuMap load() {
    CpuMap m;
    const auto& files = cpu_map_files();
    if (files.empty()) {
        m.error = "kvmready was built without libvirt's cpu_map (package libvirt-daemon)";
        return m;
    }
    auto text_of = [&](const std::string& n) -> const CpuMapFile* {
        for (const auto& f : files)
            if (f.name == n) return &f;
        return nullptr;
    };
    // index.xml's order is libvirt's decode order; files it does not name follow.
    std::vector<std::string> order;
    if (const auto* idx = text_of("index.xml")) {
        std::string err;
        if (auto root = parse_xml(std::string(idx->text), err))
            for (const auto* arch : root->all("arch"))
                if (arch->attr("name") == "x86")
                    for (const auto* inc : arch->all("include")) order.push_back(inc->attr("filename"));
    }
    for (const auto& f : files)
        if (f.name != "index.xml" && std::find(order.begin(), order.end(), f.name) == order.end()) order.emplace_back(f.name);
    for (const auto& n : order)
        if (const auto* f = text_of(n)) add_file(m, n, f->text);
    return m;
}

const std::vector<std::vector<std::string>>& level_features() {
    static const std::vector<std::vector<std::string>> levels = {
        {"cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2", "lm"},
        {"cx16", "lahf_lm", "popcnt", "pni", "sse4.1", "sse4.2", "ssse3"},
        {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
        {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
    };
    return levels;
}

ModelFit fit(const ModelDef& m, const FeatureSet& f) {
    ModelFit r;
    r.model = m.name;
    std::set_difference(f.begin(), f.end(), m.features.begin(), m.features.end(), std::back_inserter(r.require));
    std::set_difference(m.features.begin(), m.features.end(), f.begin(), f.end(), std::back_inserter(r.disable));
    return r;
}

bool vendor_ok(const ModelDef& m, const std::string& vendor) { return m.vendor.empty() || m.vendor == vendor; }

bool has_signature(const ModelDef& m, const std::vector<std::pair<unsigned, unsigned>>& sigs) {
    for (const auto& s : sigs)
        if (std::find(m.signatures.begin(), m.signatures.end(), s) != m.signatures.end()) return true;
    return false;
}

}  // namespace

const FeatureDef* CpuMap::feature(const std::string& name) const {
    for (const auto& f : features)
        if (f.name == name) return &f;
    return nullptr;
}

const ModelDef* CpuMap::model(const std::string& name) const {
    for (const auto& m : models)
        if (m.name == name) return &m;
    return nullptr;
}

const CpuMap& cpu_map() {
    static const CpuMap m = load();
    return m;
}

FeatureSet features_of(const std::vector<cpuid::Leaf>& leaves, const std::map<uint32_t, uint64_t>& msrs) {
    FeatureSet out;
    for (const auto& f : cpu_map().features) {
        if (f.has_cpuid) {
            auto it = std::find_if(leaves.begin(), leaves.end(), [&](const cpuid::Leaf& l) { return l.leaf == f.leaf && l.subleaf == f.subleaf; });
            if (it == leaves.end()) continue;
            const uint32_t got[4] = {it->eax, it->ebx, it->ecx, it->edx};
            bool all = true;
            for (int i = 0; i < 4; ++i) all = all && (got[i] & f.regs[i]) == f.regs[i];
            if (all) out.insert(f.name);
        } else if (f.has_msr) {
            auto it = msrs.find(f.msr);
            if (it != msrs.end() && (it->second & f.msr_mask) == f.msr_mask) out.insert(f.name);
        }
    }
    return out;
}

std::string vendor_name(const std::string& cpuid_vendor) {
    const auto& v = cpu_map().vendors;
    auto it = v.find(cpuid_vendor);
    return it == v.end() ? "" : it->second;
}

int x86_64_level(const FeatureSet& f) {
    int level = 0;
    for (const auto& want : level_features()) {
        for (const auto& x : want)
            if (!f.count(x)) return level;
        ++level;
    }
    return level;
}

std::vector<std::string> missing_for_level(const FeatureSet& f, int level) {
    std::vector<std::string> out;
    const auto& levels = level_features();
    for (int i = 0; i < level && i < static_cast<int>(levels.size()); ++i)
        for (const auto& x : levels[static_cast<size_t>(i)])
            if (!f.count(x)) out.push_back(x);
    return out;
}

std::string level_name(int level) { return level <= 0 ? "" : "x86-64-v" + std::to_string(level); }

std::optional<ModelFit> closest_model(const FeatureSet& f, const std::string& vendor,
                                      const std::vector<std::pair<unsigned, unsigned>>& signatures) {
    std::optional<ModelFit> best;
    const ModelDef* best_def = nullptr;
    for (const auto& m : cpu_map().models) {
        if (!m.decode_guest || !vendor_ok(m, vendor)) continue;
        ModelFit c = fit(m, f);
        bool take = !best;
        if (best) {
            const bool cur_sig = has_signature(*best_def, signatures), cand_sig = has_signature(m, signatures);
            if (cur_sig != cand_sig) take = cand_sig;
            else take = c.require.size() + c.disable.size() < best->require.size() + best->disable.size();
        }
        if (take) {
            best = std::move(c);
            best_def = &m;
        }
    }
    return best;
}

std::optional<ModelFit> runnable_model(const FeatureSet& f, const std::string& vendor) {
    std::optional<ModelFit> best;
    size_t best_size = 0;
    for (const auto& m : cpu_map().models) {
        if (!m.decode_guest || !vendor_ok(m, vendor)) continue;
        ModelFit c = fit(m, f);
        if (!c.disable.empty()) continue;
        if (!best || m.features.size() >= best_size) {
            best = std::move(c);
            best_size = m.features.size();
        }
    }
    return best;
}

std::string qemu_feature_name(const std::string& name) {
    const auto* f = cpu_map().feature(name);
    return f ? f->qemu_name : name;
}

}  // namespace kvmready::fleet
