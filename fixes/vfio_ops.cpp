// pci.driver: rebind one PCI device to another driver through sysfs
// (driver_override, unbind, drivers_probe), journaled so undo gives the
// device back to the driver it had, with the override it had.
#include <fmt/format.h>

#include "fixes/fixes.hpp"

namespace kvmready::fix {

namespace {

const std::string kDevices = "/sys/bus/pci/devices/";

// The bound driver, from the device's uevent (the driver link cannot be
// read without following it).
std::string bound_driver(OpContext& ctx, const std::string& bdf) {
    const std::string ev = ctx.sys().read_value(kDevices + bdf + "/uevent");
    for (size_t pos = 0; pos < ev.size();) {
        size_t end = ev.find('\n', pos);
        if (end == std::string::npos) end = ev.size();
        if (ev.compare(pos, 7, "DRIVER=") == 0) return ev.substr(pos + 7, end - pos - 7);
        pos = end + 1;
    }
    return "";
}

std::string override_of(OpContext& ctx, const std::string& bdf) {
    std::string v = ctx.sys().read_value(kDevices + bdf + "/driver_override");
    return v == "(null)" ? "" : v;
}

// Unbind from whatever driver holds it, set the override, and probe: the
// kernel then binds the override's driver (or none when it is cleared).
void rebind(OpContext& ctx, const std::string& bdf, const std::string& override_driver) {
    const std::string now = bound_driver(ctx, bdf);
    // An empty override is written as "\n", which clears it.
    ctx.sys().write_value(kDevices + bdf + "/driver_override", override_driver);
    if (!now.empty()) ctx.sys().write_value("/sys/bus/pci/drivers/" + now + "/unbind", bdf);
}

bool valid_bdf(const std::string& s) { return host::is_pci_address(s); }

Op pci_driver_op() {
    Op op;
    op.prepare = [](const Step& s, OpContext& ctx) {
        const std::string bdf = s.args.at("bdf");
        if (!valid_bdf(bdf)) throw std::runtime_error(fmt::format("not a PCI address: {}", bdf));
        return nlohmann::json{{"bdf", bdf}, {"driver", bound_driver(ctx, bdf)}, {"override", override_of(ctx, bdf)}};
    };
    op.apply = [](const Step& s, OpContext& ctx, nlohmann::json&) {
        const std::string bdf = s.args.at("bdf");
        const std::string want = s.args.at("driver");
        rebind(ctx, bdf, want);
        ctx.sys().write_value("/sys/bus/pci/drivers_probe", bdf);
        const std::string got = bound_driver(ctx, bdf);
        if (got != want)
            throw std::runtime_error(fmt::format("{}: after the probe the device is bound to {}, not {}", bdf, got.empty() ? "no driver" : got, want));
    };
    op.undo = [](const nlohmann::json& u, OpContext& ctx) {
        const std::string bdf = u.at("bdf");
        if (!valid_bdf(bdf)) throw std::runtime_error(fmt::format("journal names no PCI address: {}", bdf));
        const std::string driver = u.at("driver"), old_override = u.at("override");
        rebind(ctx, bdf, old_override);
        // Bind to the original driver by name: drivers_probe would pick any
        // driver that matches, and an override may name none.
        if (!driver.empty()) ctx.sys().write_value("/sys/bus/pci/drivers/" + driver + "/bind", bdf);
        else ctx.sys().write_value("/sys/bus/pci/drivers_probe", bdf);
        const std::string got = bound_driver(ctx, bdf);
        if (!driver.empty() && got != driver)
            throw std::runtime_error(fmt::format("{}: bound to {} after undo, not {}", bdf, got.empty() ? "no driver" : got, driver));
    };
    return op;
}

}  // namespace

void register_vfio_ops() { register_op("pci.driver", pci_driver_op()); }

}  // namespace kvmready::fix
