#include "host/udev_enum.hpp"

#include <libudev.h>
#include <sys/sysmacros.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "host/host.hpp"

namespace kvmready::host {

namespace {

// Properties that change between two runs on the same host: a recording
// and its replay must compare equal.
bool volatile_property(const std::string& key) { return key == "USEC_INITIALIZED" || key == "SEQNUM" || key == "ACTION"; }

std::string or_empty(const char* s) { return s ? s : ""; }

UdevDevice from_udev(udev_device* d, const std::string& subsystem) {
    UdevDevice x;
    x.subsystem = subsystem;
    x.sysname = or_empty(udev_device_get_sysname(d));
    x.syspath = or_empty(udev_device_get_syspath(d));
    x.devtype = or_empty(udev_device_get_devtype(d));
    if (subsystem == "block") {
        const dev_t n = udev_device_get_devnum(d);
        x.devnum = fmt::format("{}:{}", major(n), minor(n));
    }
    if (subsystem == "pci") {
        x.driver = or_empty(udev_device_get_driver(d));
        udev_list_entry* e = nullptr;
        udev_list_entry_foreach(e, udev_device_get_properties_list_entry(d)) {
            const std::string key = or_empty(udev_list_entry_get_name(e));
            if (!volatile_property(key)) x.properties[key] = or_empty(udev_list_entry_get_value(e));
        }
    }
    // The parent is owned by d: not unreferenced here.
    if (udev_device* p = udev_device_get_parent_with_subsystem_devtype(d, "pci", nullptr)) x.pci_parent = or_empty(udev_device_get_sysname(p));
    return x;
}

}  // namespace

UdevSnapshot enumerate_udev() {
    UdevSnapshot s;
    s.source = "libudev";
    udev* u = udev_new();
    if (!u) {
        s.available = false;
        s.error = fmt::format("udev_new: {}", std::strerror(errno));
        return s;
    }
    for (const char* subsystem : {"pci", "block", "net"}) {
        udev_enumerate* e = udev_enumerate_new(u);
        if (!e) continue;
        udev_enumerate_add_match_subsystem(e, subsystem);
        if (const int rc = udev_enumerate_scan_devices(e); rc < 0 && s.error.empty())
            s.error = fmt::format("enumerating {} devices: {}", subsystem, std::strerror(-rc));
        udev_list_entry* entry = nullptr;
        udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
            udev_device* d = udev_device_new_from_syspath(u, udev_list_entry_get_name(entry));
            if (!d) continue;  // removed since the scan
            s.devices.push_back(from_udev(d, subsystem));
            udev_device_unref(d);
        }
        udev_enumerate_unref(e);
    }
    udev_unref(u);
    return s;
}

bool is_pci_address(const std::string& s) {
    // DDDD:BB:SS.F, the domain 4 to 8 hex digits (VMD domains are longer).
    const auto colon = s.find(':');
    if (colon < 4 || colon > 8 || s.size() != colon + 8) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const size_t k = i - colon;
        if (i == colon || k == 3) {
            if (c != ':') return false;
        } else if (k == 6) {
            if (c != '.') return false;
        } else if (k == 7) {
            if (c < '0' || c > '7') return false;
        } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

UdevSnapshot enumerate_sysfs(const Host& h) {
    UdevSnapshot s;
    s.source = "sysfs";
    const std::string base = "/sys/bus/pci/devices";
    const auto names = h.list_dir(base);
    if (names.empty()) {
        s.available = false;
        s.error = base + " lists no devices";
        return s;
    }
    std::set<std::string> known;
    for (const auto& n : names)
        if (is_pci_address(n)) known.insert(n);
    std::map<std::string, std::string> parent_of;
    for (const auto& n : known)
        for (const auto& child : h.list_dir(base + "/" + n))
            if (known.count(child)) parent_of[child] = n;
    for (const auto& n : known) {
        UdevDevice d;
        d.subsystem = "pci";
        d.sysname = n;
        d.syspath = base + "/" + n;
        std::istringstream in(h.read_file(base + "/" + n + "/uevent").value_or(""));
        for (std::string line; std::getline(in, line);) {
            const auto eq = line.find('=');
            if (eq == std::string::npos || eq == 0) continue;
            d.properties[line.substr(0, eq)] = line.substr(eq + 1);
        }
        if (auto it = d.properties.find("DRIVER"); it != d.properties.end()) d.driver = it->second;
        if (auto it = parent_of.find(n); it != parent_of.end()) d.pci_parent = it->second;
        s.devices.push_back(std::move(d));
    }
    return s;
}

}  // namespace kvmready::host
