#include "host/udev_enum.hpp"

#include <libudev.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include "host/bounded_read.hpp"
#include "host/host.hpp"

namespace kvmready::host {

namespace {

// Properties that change between two runs on the same host: a recording
// and its replay must compare equal.
bool volatile_property(const std::string& key) { return key == "USEC_INITIALIZED" || key == "SEQNUM" || key == "ACTION"; }

std::string or_empty(const char* s) { return s ? s : ""; }

UdevDevice from_udev(udev_device* d) {
    UdevDevice x;
    x.subsystem = "pci";
    x.sysname = or_empty(udev_device_get_sysname(d));
    x.syspath = or_empty(udev_device_get_syspath(d));
    x.devtype = or_empty(udev_device_get_devtype(d));
    x.driver = or_empty(udev_device_get_driver(d));
    udev_list_entry* e = nullptr;
    udev_list_entry_foreach(e, udev_device_get_properties_list_entry(d)) {
        const std::string key = or_empty(udev_list_entry_get_name(e));
        if (!volatile_property(key)) x.properties[key] = or_empty(udev_list_entry_get_value(e));
    }
    // The parent is owned by d: not unreferenced here.
    if (udev_device* p = udev_device_get_parent_with_subsystem_devtype(d, "pci", nullptr)) x.pci_parent = or_empty(udev_device_get_sysname(p));
    return x;
}

std::string file_text(const std::string& path) { return read_path_bounded(path, 64 * 1024).data.value_or(""); }

std::string first_line(const std::string& path) {
    std::string t = file_text(path);
    return t.substr(0, t.find('\n'));
}

// A uevent file's KEY=value lines.
void parse_uevent(const std::string& text, std::map<std::string, std::string>& out) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        const auto eq = line.find('=');
        if (eq != std::string::npos && eq != 0) out[line.substr(0, eq)] = line.substr(eq + 1);
    }
}

// The entries of a sysfs directory of links (/sys/bus/pci/devices,
// /sys/class/net) with the device path each resolves to, in libudev's order
// (by that path) so a recording does not depend on the directory's. An
// entry removed since the listing is left out.
std::vector<std::pair<std::string, std::string>> linked_devices(const std::string& dir, std::error_code& ec) {
    namespace fs = std::filesystem;
    std::vector<std::pair<std::string, std::string>> out;
    fs::directory_iterator it(dir, ec);
    if (ec) return out;
    for (const auto& entry : it) {
        std::error_code gone;
        const fs::path target = fs::read_symlink(entry.path(), gone);
        if (!gone) out.emplace_back(entry.path().filename().string(), (fs::path(dir) / target).lexically_normal().string());
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    return out;
}

// The PCI devices as libudev lists them where no udev database exists:
// the uevent file's properties plus the two libudev adds from the path.
void add_sysfs_pci(UdevSnapshot& s) {
    const std::string bus = "/sys/bus/pci/devices";
    std::error_code ec;
    const auto links = linked_devices(bus, ec);
    // No PCI bus (a microVM): libudev lists nothing either.
    if (ec && ec != std::errc::no_such_file_or_directory) s.error = fmt::format("listing {}: {}", bus, ec.message());
    for (const auto& [name, syspath] : links) {
        if (!is_pci_address(name)) continue;
        UdevDevice x;
        x.subsystem = "pci";
        x.sysname = name;
        x.syspath = syspath;
        parse_uevent(file_text(syspath + "/uevent"), x.properties);
        x.properties["DEVPATH"] = syspath.substr(4);  // without "/sys"
        x.properties["SUBSYSTEM"] = "pci";
        if (auto d = x.properties.find("DRIVER"); d != x.properties.end()) x.driver = d->second;
        x.pci_parent = pci_device_in_path(syspath.substr(0, syspath.rfind('/')));
        s.devices.push_back(std::move(x));
    }
}

// /sys/class/SUBSYSTEM/NAME links to the device's place under /sys/devices.
void add_class_devices(const std::string& subsystem, UdevSnapshot& s) {
    const std::string cls = "/sys/class/" + subsystem;
    std::error_code ec;
    const auto links = linked_devices(cls, ec);
    if (ec && s.error.empty()) s.error = fmt::format("listing {}: {}", cls, ec.message());
    for (const auto& [name, syspath] : links) {
        UdevDevice x;
        x.subsystem = subsystem;
        x.sysname = name;
        x.syspath = syspath;
        x.pci_parent = pci_device_in_path(syspath);
        if (subsystem == "block") {
            // A partition's directory sits inside its disk's.
            std::error_code none;
            x.devtype = std::filesystem::exists(syspath + "/partition", none) ? "partition" : "disk";
            x.devnum = first_line(syspath + "/dev");
        } else {
            std::map<std::string, std::string> uevent;
            parse_uevent(file_text(syspath + "/uevent"), uevent);
            x.devtype = uevent["DEVTYPE"];  // "bridge", "vlan", "wlan"; physical NICs have none
        }
        s.devices.push_back(std::move(x));
    }
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
    if (udev_enumerate* e = udev_enumerate_new(u)) {
        udev_enumerate_add_match_subsystem(e, "pci");
        if (const int rc = udev_enumerate_scan_devices(e); rc < 0)
            s.error = fmt::format("enumerating pci devices: {}", std::strerror(-rc));
        udev_list_entry* entry = nullptr;
        udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
            udev_device* d = udev_device_new_from_syspath(u, udev_list_entry_get_name(entry));
            if (!d) continue;  // removed since the scan
            s.devices.push_back(from_udev(d));
            udev_device_unref(d);
        }
        udev_enumerate_unref(e);
    }
    udev_unref(u);
    // Block and network devices need no udev properties, only where they
    // sit, which their class link says. libudev resolves every path one
    // component at a time (~1,000 openat for 60 devices): 1.6 ms of a
    // 7 ms check here, against 0.1 ms for one readlink each.
    add_class_devices("block", s);
    add_class_devices("net", s);
    return s;
}

UdevSnapshot enumerate_sysfs_live() {
    UdevSnapshot s;
    s.source = "sysfs";
    add_sysfs_pci(s);
    add_class_devices("block", s);
    add_class_devices("net", s);
    return s;
}

UdevSnapshot enumerate_live() {
    // A udev daemon keeps its database here (hwdb names, rules' properties):
    // only then does libudev know more than sysfs says. Without one it reads
    // the same uevent files, resolving each path one component at a time:
    // 1.3 ms of a 7 ms check on these machines against 0.5 ms
    // (DevicesLive.SysfsEnumerationMatchesLibudev holds the two equal,
    // BM_EnumerateDevices{Libudev,Sysfs} measure them).
    if (::access("/run/udev/data", F_OK) == 0) return enumerate_udev();
    return enumerate_sysfs_live();
}

std::string pci_device_in_path(const std::string& path) {
    std::string found;
    size_t start = 0;
    while (start < path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        if (std::string c = path.substr(start, end - start); is_pci_address(c)) found = std::move(c);
        start = end + 1;
    }
    return found;
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
        parse_uevent(h.read_file(base + "/" + n + "/uevent").value_or(""), d.properties);
        if (auto it = d.properties.find("DRIVER"); it != d.properties.end()) d.driver = it->second;
        if (auto it = parent_of.find(n); it != parent_of.end()) d.pci_parent = it->second;
        s.devices.push_back(std::move(d));
    }
    return s;
}

}  // namespace kvmready::host
