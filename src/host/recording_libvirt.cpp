// RecordingTarget's libvirt session: no daemon is asked. Networks and pools
// live in the target's model (RecordingTarget::libvirt_objects), which the
// recorded changes update as libvirt would, refusing what libvirt refuses
// (starting an active network, autostart of a transient one, a second UUID
// under one name), so a dry run walks through a plan's steps the way the
// daemon would take them. Volumes and domains are only written down: a
// domain never runs, so its state is "shut off".
#include <fmt/format.h>

#include "host/target.hpp"

namespace kvmready::host {

namespace {

const char* noun(LibvirtKind k) {
    switch (k) {
        case LibvirtKind::network: return "network";
        case LibvirtKind::pool: return "pool";
        case LibvirtKind::volume: return "volume";
        case LibvirtKind::domain: return "domain";
    }
    return "?";
}

// libvirt's words for a lookup that found nothing.
std::string not_found_message(LibvirtKind k, const std::string& by, const std::string& what) {
    return k == LibvirtKind::network ? fmt::format("Network not found: no network with matching {} '{}'", by, what)
                                     : fmt::format("Storage pool not found: no storage pool with matching {} '{}'", by, what);
}

// The text of the first <tag> element at or after `from` ("" when none).
std::string element_text(const std::string& xml, const std::string& tag, size_t from = 0) {
    const std::string open = "<" + tag + ">", close = "</" + tag + ">";
    const auto a = xml.find(open, from);
    if (a == std::string::npos) return "";
    const auto b = xml.find(close, a);
    return b == std::string::npos ? "" : xml.substr(a + open.size(), b - a - open.size());
}

// A recorded handle is the object's name (a volume's: POOL/VOLUME).
void release_name(LibvirtKind, void* p) { delete static_cast<std::string*>(p); }
LibvirtObject handle_for(LibvirtKind k, const std::string& name) { return {k, new std::string(name), release_name}; }
const std::string& name_of(const LibvirtObject& o) { return *static_cast<const std::string*>(o.handle()); }

}  // namespace

class RecordedLibvirt final : public LibvirtSession {
public:
    RecordedLibvirt(RecordingTarget& rec, std::string uri) : rec_(rec), uri_(std::move(uri)) {}

    [[nodiscard]] const LibvirtError& error() const override { return error_; }
    [[nodiscard]] std::string current_error() override { return ""; }
    void set_keepalive(int, unsigned) override {}
    bool alive() override { return true; }

    LibvirtObject lookup(LibvirtKind kind, const std::string& name) override {
        if (find(kind, name)) return handle_for(kind, name);
        not_found(not_found_message(kind, "name", name));
        return {};
    }
    LibvirtObject lookup_uuid(LibvirtKind kind, const std::string& uuid) override {
        for (const auto& o : rec_.libvirt_objects)
            if (o.kind == kind && !uuid.empty() && element_text(o.xml, "uuid") == uuid) return handle_for(kind, o.name);
        not_found(not_found_message(kind, "uuid", uuid));
        return {};
    }
    LibvirtObject define(LibvirtKind kind, const std::string& xml) override {
        const std::string name = element_text(xml, "name"), uuid = element_text(xml, "uuid");
        if (name.empty()) {
            fail(fmt::format("XML error: missing {} name", noun(kind)));
            return {};
        }
        auto* o = find(kind, name);
        const std::string old_uuid = o ? element_text(o->xml, "uuid") : "";
        if (!uuid.empty() && !old_uuid.empty() && uuid != old_uuid) {
            fail(fmt::format("operation failed: {} '{}' already exists with uuid {}", noun(kind), name, old_uuid));
            return {};
        }
        record("define", kind, name, xml);
        if (!o) {
            rec_.libvirt_objects.push_back({kind, name, xml, true, false, false});
        } else {
            o->xml = xml;
            o->persistent = true;
        }
        return handle_for(kind, name);
    }
    bool start(const LibvirtObject& h) override {
        auto* o = object(h);
        if (!o) return false;
        if (o->active) return fail(fmt::format("Requested operation is not valid: {} is already active", noun(h.kind())));
        record("start", h.kind(), o->name);
        o->active = true;
        return true;
    }
    bool stop(const LibvirtObject& h) override {
        auto* o = object(h);
        if (!o) return false;
        if (!o->active) return fail(fmt::format("Requested operation is not valid: {} is not active", noun(h.kind())));
        record("stop", h.kind(), o->name);
        o->active = false;
        forget_if_gone(*o);
        return true;
    }
    bool undefine(const LibvirtObject& h) override {
        auto* o = object(h);
        if (!o) return false;
        if (!o->persistent) return fail(fmt::format("Requested operation is not valid: {} is not persistent", noun(h.kind())));
        record("undefine", h.kind(), o->name);
        o->persistent = o->autostart = false;
        forget_if_gone(*o);
        return true;
    }
    bool set_autostart(const LibvirtObject& h, bool on) override {
        auto* o = object(h);
        if (!o) return false;
        if (!o->persistent) return fail(fmt::format("Requested operation is not valid: cannot set autostart for transient {}", noun(h.kind())));
        record(on ? "autostart" : "noautostart", h.kind(), o->name);
        o->autostart = on;
        return true;
    }
    bool active(const LibvirtObject& h) override { return model(h) && model(h)->active; }
    bool persistent(const LibvirtObject& h) override { return model(h) && model(h)->persistent; }
    bool autostart(const LibvirtObject& h) override { return model(h) && model(h)->autostart; }
    std::string xml(const LibvirtObject& h) override { return model(h) ? model(h)->xml : ""; }
    bool build_pool(const LibvirtObject& h) override {
        if (!object(h)) return false;
        record("build", LibvirtKind::pool, name_of(h));
        return true;
    }
    bool update_dhcp_host(const LibvirtObject& h, bool add, const std::string& host_xml) override {
        if (!object(h)) return false;
        record(add ? "dhcp-add" : "dhcp-delete", LibvirtKind::network, name_of(h), host_xml);
        return true;
    }

    LibvirtObject create_volume(const LibvirtObject& pool, const std::string& xml) override {
        if (!object(pool)) return {};
        const std::string name = name_of(pool) + "/" + element_text(xml, "name");
        record("create", LibvirtKind::volume, name, xml);
        return handle_for(LibvirtKind::volume, name);
    }
    // The pool's <target><path>, and the volume's name in it.
    std::string volume_path(const LibvirtObject& vol) override {
        const std::string& full = name_of(vol);
        const auto slash = full.find('/');
        const auto* pool = find(LibvirtKind::pool, full.substr(0, slash));
        const auto target = pool ? pool->xml.find("<target>") : std::string::npos;
        const std::string dir = target == std::string::npos ? "" : element_text(pool->xml, "path", target);
        return dir.empty() ? "" : dir + "/" + full.substr(slash + 1);
    }
    bool upload(const LibvirtObject& vol, const std::string& data) override {
        record("upload", LibvirtKind::volume, name_of(vol), data, fmt::format(" ({} bytes)", data.size()));
        return true;
    }
    bool delete_volume(const LibvirtObject& vol) override {
        record("delete", LibvirtKind::volume, name_of(vol));
        return true;
    }

    std::optional<std::vector<std::pair<std::string, std::string>>> active_domains() override {
        return std::vector<std::pair<std::string, std::string>>{};
    }
    LibvirtObject create_domain(const std::string& xml, bool autodestroy) override {
        const std::string name = element_text(xml, "name");
        record("create", LibvirtKind::domain, name, xml, autodestroy ? " (autodestroy)" : "");
        return handle_for(LibvirtKind::domain, name);
    }
    std::optional<DomainState> domain_state(const LibvirtObject&) override { return DomainState::shutoff; }
    bool destroy_domain(const LibvirtObject& dom) override {
        record("destroy", LibvirtKind::domain, name_of(dom));
        return true;
    }

private:
    RecordingTarget::LibvirtModelObject* find(LibvirtKind kind, const std::string& name) {
        for (auto& o : rec_.libvirt_objects)
            if (o.kind == kind && o.name == name) return &o;
        return nullptr;
    }
    RecordingTarget::LibvirtModelObject* model(const LibvirtObject& h) { return h ? find(h.kind(), name_of(h)) : nullptr; }
    // The model object, or nullptr with the error of an object gone meanwhile.
    RecordingTarget::LibvirtModelObject* object(const LibvirtObject& h) {
        auto* o = model(h);
        if (!o) not_found(not_found_message(h.kind(), "name", h ? name_of(h) : ""));
        return o;
    }
    // Neither running nor defined: libvirt forgets it.
    void forget_if_gone(const RecordingTarget::LibvirtModelObject& o) {
        if (o.active || o.persistent) return;
        auto& v = rec_.libvirt_objects;
        for (auto it = v.begin(); it != v.end(); ++it)
            if (&*it == &o) {
                v.erase(it);
                return;
            }
    }
    void record(const char* verb, LibvirtKind kind, const std::string& name, const std::string& body = "", const std::string& note = "") {
        rec_.changes_.push_back(fmt::format("libvirt {} {} {}{}", verb, noun(kind), name, note));
        rec_.libvirt_calls_.push_back({uri_, verb, noun(kind), name, body});
    }
    bool fail(const std::string& message) {
        error_ = {};
        error_.message = message;
        return false;
    }
    void not_found(const std::string& message) {
        fail(message);
        error_.not_found = true;
    }

    RecordingTarget& rec_;
    std::string uri_;
    LibvirtError error_;
};

std::unique_ptr<LibvirtSession> RecordingTarget::open_libvirt(const std::string& uri, LibvirtError*) {
    return std::make_unique<RecordedLibvirt>(*this, uri);
}

}  // namespace kvmready::host
