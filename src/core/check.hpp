// Checks: metadata plus a pure function from Facts (and the results of the
// checks it depends on) to a Finding.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/derived.hpp"
#include "core/facts.hpp"

namespace kvmready {

enum class Status { Pass, Warn, Fail, Skip, Unknown, Error };
// required: KVM itself; a failure means no VM can run. recommended: a host
// without it runs VMs with problems. optional: reported, never changes the verdict.
enum class Level { Required, Recommended, Optional };

const char* to_string(Status s);
const char* to_string(Level l);

struct Remediation {
    std::string text;
    std::vector<std::string> commands;
    std::string fix_id;          // a future `kvmready fix` id, empty if none
    std::string applicability;   // "automatic", "confirm", "manual"
    bool requires_root = false;
};

struct Finding {
    std::string id;
    std::string category;
    std::string title;
    Level level = Level::Required;
    Status status = Status::Unknown;
    std::string message;
    nlohmann::ordered_json evidence = nlohmann::ordered_json::object();
    Remediation remediation;
};

// What a check may know besides Facts: the derived facts of this run
// (derive(), computed once when the run starts, not by each check) and the
// results of the checks before it.
class Results {
public:
    // `f` must outlive the Results (Derived points into it).
    explicit Results(const Facts& f) : derived_(derive(f)) {}
    [[nodiscard]] const Derived& derived() const { return derived_; }
    void add(const Finding& f) { by_id_[f.id] = f; }
    [[nodiscard]] const Finding* find(const std::string& id) const {
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &it->second;
    }
    [[nodiscard]] Status status(const std::string& id) const {
        const Finding* f = find(id);
        return f ? f->status : Status::Unknown;
    }
private:
    Derived derived_;
    std::map<std::string, Finding> by_id_;
};

struct CheckSpec {
    const char* id;
    const char* title;
    Level level;
    // Checks whose fail/skip makes this one meaningless (it then says skip).
    std::vector<const char*> depends_on;
    const char* reads;      // for `explain`: where the evidence comes from
    const char* why;        // why it matters
    const char* fix;        // how to fix, in general
    // Fills status, message, evidence, remediation. May throw: the runner
    // turns that into an `error` finding.
    std::function<void(const Facts&, const Results&, Finding&)> run;
    // ProbeArea bits of the facts it reads beyond the core; set by registry().
    unsigned areas = 0;
    // The ground truth (kvm.api): its pass means KVM works, whatever else
    // says. The verdict names its evidence's "flavour", and a run of
    // selected checks says whether it was among them. The runner knows no
    // check by name, so the registry marks it here.
    bool ground_truth = false;

    [[nodiscard]] std::string category() const {
        std::string s(id);
        return s.substr(0, s.find('.'));
    }
};

const std::vector<CheckSpec>& registry();
const CheckSpec* find_check(const std::string& id);

}  // namespace kvmready
