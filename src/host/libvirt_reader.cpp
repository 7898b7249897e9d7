// The probe's libvirt read on either client (see libvirt_reader.hpp), and the
// libvirt.so implementation of LibvirtReader.
#include "host/libvirt_reader.hpp"

#include <thread>

#include "host/libvirt_client.hpp"

namespace kvmready::host {

namespace {

// libvirt.so: calls block, so run() makes them one after the other, except
// networks and pools, which go on a thread of their own beside the rest:
// libvirt's client multiplexes concurrent calls on one connection and the
// daemon answers them on its worker threads, and the capability calls can
// take seconds (the daemon probes QEMU when its cache is stale).
class LibraryReader final : public LibvirtReader {
public:
    explicit LibraryReader(std::unique_ptr<LibvirtConnection> c) : c_(std::move(c)) {}
    [[nodiscard]] const char* client() const override { return "libvirt.so"; }

    void version(std::function<void(std::string, std::optional<uint64_t>)> done) override {
        queue(false, [this, done = std::move(done)] {
            std::string type = c_->hypervisor_type();
            const auto lib = c_->library_version();
            done(std::move(type), lib ? std::optional<uint64_t>(*lib) : std::nullopt);
        });
    }
    void networks(std::function<void(std::vector<LibvirtNetwork>, std::string)> done) override {
        queue(true, [this, done = std::move(done)] {
            std::string err;
            auto out = c_->list_networks(&err);
            done(std::move(out), err);
        });
    }
    void pools(std::function<void(std::vector<LibvirtPool>, std::string)> done) override {
        queue(true, [this, done = std::move(done)] {
            std::string err;
            auto out = c_->list_pools(&err);
            done(std::move(out), err);
        });
    }
    void domain_capabilities(const std::string& virttype, std::function<void(std::string, std::string)> done) override {
        queue(false, [this, virttype, done = std::move(done)] {
            std::string err;
            std::string xml = c_->domain_capabilities(virttype, &err);
            done(std::move(xml), err);
        });
    }
    void capabilities(std::function<void(std::string, std::string)> done) override {
        queue(false, [this, done = std::move(done)] {
            std::string err;
            std::string xml = c_->capabilities(&err);
            done(std::move(xml), err);
        });
    }
    void hypervisor_version(std::function<void(std::optional<uint64_t>)> done) override {
        queue(false, [this, done = std::move(done)] {
            const auto hv = c_->hypervisor_version();
            done(hv ? std::optional<uint64_t>(*hv) : std::nullopt);
        });
    }

    // No deadline here: a hung daemon blocks the calls, and the caller
    // abandons the thread this runs on (host/libvirt_live.cpp).
    Status run(LibvirtClock::time_point, std::string*) override {
        std::vector<std::function<void()>> background;
        for (auto& [bg, call] : queued_)
            if (bg) background.push_back(call);
        std::thread objects;
        for (auto& [bg, call] : queued_) {
            // The thread starts at the first background call, after the
            // calls queued before it (the version) answered.
            if (bg && !objects.joinable())
                objects = std::thread([&background] {
                    for (auto& c : background) c();
                });
            if (!bg) call();
        }
        if (objects.joinable()) objects.join();
        queued_.clear();
        return Status::answered;
    }

private:
    void queue(bool background, std::function<void()> call) { queued_.emplace_back(background, std::move(call)); }

    std::unique_ptr<LibvirtConnection> c_;
    std::vector<std::pair<bool, std::function<void()>>> queued_;
};

}  // namespace

LibvirtReaderOpen open_library_reader(const std::string& uri) {
    LibvirtReaderOpen o;
    o.client = "libvirt.so";
    if (std::string load_error = LibvirtConnection::unavailable(); !load_error.empty()) {
        o.status = LibvirtReaderOpen::Status::unavailable;
        o.error = load_error;
        return o;
    }
    // One connection: read-write when this user may have it (root, group
    // libvirt, polkit), which managing domains and domain capabilities
    // need anyway; read-only otherwise. Each extra open costs a round
    // trip and the daemon's per-client setup.
    const auto t0 = LibvirtClock::now();
    LibvirtError rw, ro;
    std::unique_ptr<LibvirtConnection> c = LibvirtConnection::open(uri, &rw);
    o.read_write_error = c ? "" : rw.message;
    if (!c) c = LibvirtConnection::open_read_only(uri, &ro);
    o.connect_ms = std::chrono::duration<double, std::milli>(LibvirtClock::now() - t0).count();
    if (!c) {
        o.status = LibvirtReaderOpen::Status::refused;
        o.error = ro.message;
        return o;
    }
    o.status = LibvirtReaderOpen::Status::opened;
    o.reader = std::make_unique<LibraryReader>(std::move(c));
    return o;
}

namespace {

// The reads, queued cheapest first, each answer published as it arrives: a
// daemon that answers the connection but re-probes QEMU for every
// capabilities call still yields its version, networks and pools.
void queue_reads(LibvirtReader& r, const LibvirtPublish& publish) {
    r.version([&publish](std::string type, std::optional<uint64_t> lib) {
        publish("version", [&](LibvirtSnapshot& s) {
            s.hypervisor_type = std::move(type);
            if (lib) s.library_version = *lib;
        });
    });
    r.networks([&publish](std::vector<LibvirtNetwork> nets, std::string error) {
        publish("networks", [&](LibvirtSnapshot& s) {
            s.networks = std::move(nets);
            s.networks_error = error;
        });
    });
    r.pools([&publish](std::vector<LibvirtPool> pools, std::string error) {
        publish("pools", [&](LibvirtSnapshot& s) {
            s.pools = std::move(pools);
            s.pools_error = error;
        });
    });
    // libvirt refuses domain capabilities on read-only connections: the
    // error says so.
    r.domain_capabilities("kvm", [&publish](std::string xml, std::string error) {
        publish("domcaps-kvm", [&](LibvirtSnapshot& s) {
            s.domcaps_kvm_xml = std::move(xml);
            s.domcaps_kvm_error = error;
        });
    });
    r.domain_capabilities("qemu", [&publish](std::string xml, std::string error) {
        publish("domcaps-qemu", [&](LibvirtSnapshot& s) {
            s.domcaps_qemu_xml = std::move(xml);
            s.domcaps_qemu_error = error;
        });
    });
    r.capabilities([&publish](std::string xml, std::string error) {
        publish("capabilities", [&](LibvirtSnapshot& s) {
            s.capabilities_xml = std::move(xml);
            s.capabilities_error = error;
        });
    });
    r.hypervisor_version([&publish](std::optional<uint64_t> hv) {
        publish("hypervisor-version", [&](LibvirtSnapshot& s) {
            if (hv) s.hypervisor_version = *hv;
        });
    });
}

}  // namespace

LibvirtReader::Status read_libvirt(LibvirtReaderOpen opened, const LibvirtPublish& publish, LibvirtClock::time_point deadline,
                                   std::string* reason) {
    using S = LibvirtReaderOpen::Status;
    switch (opened.status) {
    case S::timed_out: return LibvirtReader::Status::timed_out;
    case S::declined: return LibvirtReader::Status::declined;
    case S::unavailable:
        publish("open", [&](LibvirtSnapshot& s) {
            s.client = opened.client;
            s.attempted = false;
            s.not_attempted_reason = opened.error;
        });
        return LibvirtReader::Status::answered;
    case S::refused:
        publish("open", [&](LibvirtSnapshot& s) {
            s.error = opened.error;
            s.connect_ms = opened.connect_ms;
            s.client = opened.client;
        });
        return LibvirtReader::Status::answered;
    case S::opened: break;
    }
    publish("open", [&](LibvirtSnapshot& s) {
        s.connected = true;
        s.connect_ms = opened.connect_ms;
        s.client = opened.client;
    });
    publish("read-write", [&](LibvirtSnapshot& s) {
        s.read_write = opened.read_write_error.empty();
        s.read_write_error = opened.read_write_error;
    });
    queue_reads(*opened.reader, publish);
    const auto status = opened.reader->run(deadline, reason);
    // On a timeout the wire reader's callbacks still refer to `publish`:
    // nothing runs them once run() returned, and the reader goes here.
    opened.reader.reset();
    return status;
}

}  // namespace kvmready::host
