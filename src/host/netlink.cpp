#include "host/netlink.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kvmready::host::nl {

std::string Attr::str() const {
    const auto* c = reinterpret_cast<const char*>(data);
    return std::string(c, strnlen(c, len));
}

uint32_t Attr::be32() const { return ntohl(u32()); }

uint32_t Attr::u32() const {
    uint32_t v = 0;
    std::memcpy(&v, data, std::min(len, sizeof v));
    return v;
}

uint64_t Attr::be64() const {
    uint64_t v = 0;
    if (len >= sizeof v) std::memcpy(&v, data, sizeof v);
    return be64toh(v);
}

std::vector<Attr> parse_attrs(const uint8_t* p, size_t len) {
    std::vector<Attr> out;
    size_t off = 0;
    while (off + NLA_HDRLEN <= len) {
        nlattr a {};
        std::memcpy(&a, p + off, sizeof a);
        if (a.nla_len < NLA_HDRLEN || off + a.nla_len > len) break;
        out.push_back(Attr{static_cast<uint16_t>(a.nla_type & NLA_TYPE_MASK), p + off + NLA_HDRLEN, a.nla_len - size_t{NLA_HDRLEN}});
        off += NLA_ALIGN(a.nla_len);
    }
    return out;
}

const Attr* find(const std::vector<Attr>& attrs, uint16_t type) {
    const Attr* hit = nullptr;
    for (const auto& a : attrs)
        if (a.type == type) hit = &a;
    return hit;
}

Request::Request(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len) {
    buf_.resize(NLMSG_HDRLEN + NLMSG_ALIGN(fixed_len));
    std::memcpy(buf_.data() + NLMSG_HDRLEN, fixed, fixed_len);
    nlmsghdr* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void Request::put_string(uint16_t type, const std::string& s) {
    const size_t len = NLA_HDRLEN + s.size() + 1;
    const size_t at = buf_.size();
    buf_.resize(at + NLA_ALIGN(len));
    nlattr a {static_cast<uint16_t>(len), type};
    std::memcpy(buf_.data() + at, &a, sizeof a);
    std::memcpy(buf_.data() + at + NLA_HDRLEN, s.c_str(), s.size() + 1);
    header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

Socket::~Socket() {
    if (fd_ >= 0) ::close(fd_);
}

int Socket::open(int protocol, int timeout_ms) {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) return errno;
    timeval tv {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_nl sa {};
    sa.nl_family = AF_NETLINK;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return errno;
    // Dumps of a large ruleset arrive in messages of up to a page or more.
    rx_.resize(65536);
    return 0;
}

int Socket::dump(Request& req, const std::function<void(const nlmsghdr&)>& on_msg, bool* interrupted) {
    nlmsghdr* h = req.header();
    h->nlmsg_seq = ++seq_;
    const uint32_t seq = h->nlmsg_seq;
    sockaddr_nl kernel {};
    kernel.nl_family = AF_NETLINK;
    const auto& d = req.data();
    for (;;) {
        if (::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) >= 0) break;
        if (errno != EINTR) return errno;
    }
    for (;;) {
        iovec iov {rx_.data(), rx_.size()};
        msghdr mh {};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        ssize_t n = ::recvmsg(fd_, &mh, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? ETIMEDOUT : errno;
        }
        if (mh.msg_flags & MSG_TRUNC) return EMSGSIZE;
        size_t left = static_cast<size_t>(n);
        for (auto* m = reinterpret_cast<nlmsghdr*>(rx_.data()); NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_seq != seq) continue;  // a late reply to an earlier request
            if (m->nlmsg_flags & NLM_F_DUMP_INTR) *interrupted = true;
            if (m->nlmsg_type == NLMSG_DONE) {
                // A dump that failed part-way says so in DONE's payload.
                int err = 0;
                if (m->nlmsg_len >= NLMSG_HDRLEN + sizeof err) std::memcpy(&err, NLMSG_DATA(m), sizeof err);
                return err < 0 ? -err : 0;
            }
            if (m->nlmsg_type == NLMSG_ERROR) {
                nlmsgerr e {};
                std::memcpy(&e, NLMSG_DATA(m), std::min<size_t>(sizeof e, m->nlmsg_len - NLMSG_HDRLEN));
                if (e.error != 0) return -e.error;
                continue;  // an acknowledgement
            }
            on_msg(*m);
        }
    }
}

}  // namespace kvmready::host::nl
