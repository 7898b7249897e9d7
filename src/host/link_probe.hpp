// Is a link usable right after a change to it? The net.bridge fix asks this
// before it confirms its watchdog: an ICMP echo through the device (raw
// socket, else an unprivileged ping socket), or the neighbour answering
// ARP/ND on it, or for no target the device's carrier.
#pragma once

#include <string>

namespace kvmready::host {

struct LinkProbe {
    bool ok = false;
    std::string how;   // what answered, or what did not
    double ms = 0;
};

// An echo reply from target through dev, or the target resolved on dev
// (ARP/ND answered: the link through the bridge works), within timeout_ms.
// target "": dev's operstate turning "up". Throws on a malformed target.
LinkProbe probe_link(const std::string& dev, const std::string& target, int timeout_ms);

// /sys/class/net/DEV/operstate ("up", "down", ...; "" when unreadable).
std::string link_operstate(const std::string& dev);

}  // namespace kvmready::host
