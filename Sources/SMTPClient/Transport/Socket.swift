// The only place SMTPClient touches sockets: getaddrinfo (or one given address), a non-blocking connect with a
// deadline (IPv4 and IPv6, each address in turn), and read/write that wait with poll(2)
// until a deadline. EINTR is retried here; failures become `TransportError`.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    case resolve(host: String, reason: String)
    case connect(address: String, reason: String)
    case timedOut(String)
    case closed
    case io(String)

    public var description: String {
        switch self {
        case .resolve(let host, let reason): return "cannot resolve \(host): \(reason)"
        case .connect(let address, let reason): return "cannot connect to \(address): \(reason)"
        case .timedOut(let what): return "timed out \(what)"
        case .closed: return "connection closed by the relay"
        case .io(let what): return what
        }
    }
}

/// A connected non-blocking TCP socket.
public final class Socket {
    public let fd: Int32
    /// The peer as `address:port` (IPv6 in brackets).
    public let peer: String

    init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { Glibc.close(fd) }

    /// Resolves `host` and connects to its addresses in order until one answers.
    public static func connect(host: String, port: UInt16, timeout: Duration) throws(TransportError) -> Socket {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        if rc != 0 {
            // AI_ADDRCONFIG hides ::1 on hosts without a global IPv6 address; try without it.
            hints.ai_flags = 0
            let again = getaddrinfo(host, String(port), &hints, &list)
            if again != 0 { throw .resolve(host: host, reason: String(cString: gai_strerror(again))) }
        }
        defer { freeaddrinfo(list) }
        let deadline = Deadline.after(timeout)
        var lastError = TransportError.connect(address: "\(host):\(port)", reason: "no address")
        var entry = list
        while let ai = entry {
            let address = Socket.describe(ai.pointee.ai_addr, port: port)
            do {
                return try connect(ai.pointee, address: address, deadline: deadline)
            } catch {
                lastError = error
            }
            entry = ai.pointee.ai_next
        }
        throw lastError
    }

    /// Connects to exactly `address` (no name lookup), as direct delivery does with each
    /// address of each MX host in turn.
    public static func connect(address: IPAddress, port: UInt16, timeout: Duration) throws(TransportError) -> Socket {
        let deadline = Deadline.after(timeout)
        let peer = address.description(port: port)
        var (storage, length) = address.socketAddress(port: port)
        let result = withUnsafeMutablePointer(to: &storage) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress -> Result<Socket, TransportError> in
                var ai = addrinfo()
                ai.ai_family = address.family == .v4 ? AF_INET : AF_INET6
                ai.ai_socktype = Int32(SOCK_STREAM.rawValue)
                ai.ai_addr = socketAddress
                ai.ai_addrlen = length
                do throws(TransportError) { return .success(try connect(ai, address: peer, deadline: deadline)) } catch { return .failure(error) }
            }
        }
        return try result.get()
    }

    private static func connect(_ ai: addrinfo, address: String, deadline: Deadline) throws(TransportError) -> Socket {
        let fd = Glibc.socket(ai.ai_family, ai.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), ai.ai_protocol)
        guard fd >= 0 else { throw .connect(address: address, reason: String(cString: strerror(errno))) }
        let socket = Socket(fd: fd, peer: address)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if Glibc.connect(fd, ai.ai_addr, ai.ai_addrlen) != 0 {
            guard errno == EINPROGRESS || errno == EINTR else {
                throw .connect(address: address, reason: String(cString: strerror(errno)))
            }
            guard try socket.wait(for: Int16(POLLOUT), until: deadline) else {
                throw .connect(address: address, reason: "no answer within the connect timeout")
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { throw .connect(address: address, reason: String(cString: strerror(error))) }
        }
        return socket
    }

    static func describe(_ address: UnsafeMutablePointer<sockaddr>?, port: UInt16) -> String {
        guard let address else { return "?" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        getnameinfo(address, socklen_t(address.pointee.sa_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size),
                    &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
        let text = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return address.pointee.sa_family == sa_family_t(AF_INET6) ? "[\(text)]:\(port)" : "\(text):\(port)"
    }

    /// Waits until the socket is ready for `events`; false when the deadline passed.
    func wait(for events: Int16, until deadline: Deadline) throws(TransportError) -> Bool {
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let n = poll(&pfd, 1, deadline.remainingMilliseconds)
            if n > 0 { return true }
            if n == 0 { return false }
            if errno != EINTR { throw .io("poll: \(String(cString: strerror(errno)))") }
        }
    }

    /// Waits for readable and/or writable; returns (readable, writable), both false at the deadline.
    func waitEither(write: Bool, until deadline: Deadline) throws(TransportError) -> (Bool, Bool) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN) | (write ? Int16(POLLOUT) : 0), revents: 0)
        while true {
            let n = poll(&pfd, 1, deadline.remainingMilliseconds)
            if n > 0 {
                let hangup = pfd.revents & (Int16(POLLHUP) | Int16(POLLERR)) != 0
                return (pfd.revents & Int16(POLLIN) != 0 || hangup, pfd.revents & Int16(POLLOUT) != 0)
            }
            if n == 0 { return (false, false) }
            if errno != EINTR { throw .io("poll: \(String(cString: strerror(errno)))") }
        }
    }

    /// One non-blocking read: bytes read, 0 when it would block; throws `.closed` at EOF.
    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        while true {
            let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return n }
            if n == 0 { throw .closed }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            if errno == ECONNRESET { throw .closed }
            throw .io("recv: \(String(cString: strerror(errno)))")
        }
    }

    /// One non-blocking write: bytes written, 0 when it would block.
    func writeSome(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> Int {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            if errno == EPIPE || errno == ECONNRESET { throw .closed }
            throw .io("send: \(String(cString: strerror(errno)))")
        }
    }
}
