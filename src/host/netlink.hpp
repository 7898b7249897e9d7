// A minimal netlink client for the two dumps the network probe needs
// (rtnetlink's addresses, nf_tables' ruleset): build a request, read a
// multipart dump, walk attributes. In process, because the programs that
// print the same (`ip -j addr`, `nft -j list ruleset`, `iptables -S`) cost
// 1.3-3.6 ms each to start here, and libnftables 2 ms to build its cache.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace kvmready::host::nl {

// One attribute (type without the nested/byte-order flags) and its payload.
struct Attr {
    uint16_t type = 0;
    const uint8_t* data = nullptr;
    size_t len = 0;

    [[nodiscard]] std::string str() const;                    // NUL-terminated string
    [[nodiscard]] uint32_t be32() const;                      // network byte order
    [[nodiscard]] uint32_t u32() const;                       // host byte order
    [[nodiscard]] uint64_t be64() const;
    [[nodiscard]] std::vector<uint8_t> bytes() const { return {data, data + len}; }
};

// The attributes in [p, p + len), in order.
std::vector<Attr> parse_attrs(const uint8_t* p, size_t len);
inline std::vector<Attr> parse_attrs(const Attr& nested) { return parse_attrs(nested.data, nested.len); }
// The last attribute of this type, or nullptr.
const Attr* find(const std::vector<Attr>& attrs, uint16_t type);

// A request: header, a fixed family header, then attributes.
class Request {
public:
    Request(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len);
    void put_string(uint16_t type, const std::string& s);
    [[nodiscard]] const std::vector<uint8_t>& data() const { return buf_; }
    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }

private:
    std::vector<uint8_t> buf_;
};

class Socket {
public:
    Socket() = default;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket();

    // errno, or 0. Replies are awaited at most timeout_ms each.
    int open(int protocol, int timeout_ms);

    // Sends req and hands each reply message to on_msg until the dump ends.
    // Returns 0 or the errno the kernel (or the socket) reported;
    // *interrupted is set when the dumped state changed meanwhile
    // (NLM_F_DUMP_INTR): the caller dumps again.
    int dump(Request& req, const std::function<void(const nlmsghdr&)>& on_msg, bool* interrupted);

private:
    int fd_ = -1;
    uint32_t seq_ = 0;
    std::vector<uint8_t> rx_;
};

}  // namespace kvmready::host::nl
