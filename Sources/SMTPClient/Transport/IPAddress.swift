// A numeric IPv4 or IPv6 address, as DNS answers give them and as `Socket.connect(address:)`
// takes them. Invariant: `bytes` holds exactly 4 (IPv4) or 16 (IPv6) octets in network
// order; text goes in and out through inet_pton/inet_ntop, here and nowhere else.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable { case v4, v6 }

    public let family: Family
    /// Network order: 4 octets for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// From 4 or 16 octets in network order; nil for any other length.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: family = .v4
        case 16: family = .v6
        default: return nil
        }
        self.bytes = bytes
    }

    /// From text: `192.0.2.1` or `2001:db8::1` (no brackets, no zone); nil for anything else.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// The conventional text form (inet_ntop): `192.0.2.1`, `2001:db8::1`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = self.family == .v4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `address:port`, the IPv6 address in brackets (as `Socket.peer` writes it).
    public func description(port: UInt16) -> String {
        family == .v6 ? "[\(self)]:\(port)" : "\(self):\(port)"
    }

    /// This address and `port` as a socket address (sockaddr_in or sockaddr_in6 inside the
    /// storage) and its length.
    func socketAddress(port: UInt16) -> (sockaddr_storage, socklen_t) {
        var storage = sockaddr_storage()
        switch family {
        case .v4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: bytes) }
            withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
            return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes) }
            withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }
}
