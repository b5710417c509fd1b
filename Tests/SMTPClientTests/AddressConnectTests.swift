// Connecting to one given address, as direct delivery does with each address of each MX
// host: the socket reaches exactly that loopback address (root may bind any 127.x), and a
// session given an address literal delivers there.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SMTPClient

final class AddressConnectTests: XCTestCase {
    /// A TCP listener on `address` and a port the kernel picks.
    final class Listener {
        let fd: Int32
        let port: UInt16

        init(_ address: String) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_addr.s_addr = inet_addr(address)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0, listen(fd, 8) == 0 else {
                close(fd)
                throw DNSTestSetupError(description: "cannot listen on \(address): \(String(cString: strerror(errno)))")
            }
            _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            self.fd = fd
            port = UInt16(bigEndian: sa.sin_port)
        }

        /// The local address of the next accepted connection, as the client reached it.
        func acceptedLocalAddress() -> String? {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return nil }
            defer { close(client) }
            var sa = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(client, $0, &length) } }
            return String(cString: inet_ntoa(sa.sin_addr))
        }

        deinit { close(fd) }
    }

    func testASocketConnectsToTheGivenLoopbackAddressOnly() throws {
        let listener = try Listener("127.0.0.2")
        let socket = try Socket.connect(address: XCTUnwrap(IPAddress("127.0.0.2")), port: listener.port, timeout: .seconds(5))
        XCTAssertEqual(socket.peer, "127.0.0.2:\(listener.port)")
        XCTAssertEqual(listener.acceptedLocalAddress(), "127.0.0.2")
        XCTAssertThrowsError(try Socket.connect(address: XCTUnwrap(IPAddress("127.0.0.3")), port: listener.port, timeout: .seconds(5))) { error in
            guard case .connect(let address, _)? = error as? TransportError else { return XCTFail("\(error)") }
            XCTAssertEqual(address, "127.0.0.3:\(listener.port)", "nothing listens there: refused, not rerouted")
        }
    }

    func testASocketConnectsToAnIPv6Address() throws {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_addr = in6addr_loopback
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        XCTAssertEqual(bound, 0, "bind [::1]")
        XCTAssertEqual(listen(fd, 1), 0)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = UInt16(bigEndian: sa.sin6_port)
        let socket = try Socket.connect(address: XCTUnwrap(IPAddress("::1")), port: port, timeout: .seconds(5))
        XCTAssertEqual(socket.peer, "[::1]:\(port)")
    }

    func testASessionGivenAnAddressLiteralDeliversThere() throws {
        let directory = try TLSTestTools.temporaryDirectory("address")
        let relay = try TLSRecorder(in: directory, ["--host", "127.0.0.3"])
        defer { relay.stop() }
        let session = SMTPSession(host: "127.0.0.3", port: relay.port, settings: .testing(tls: .none))
        try session.open()
        let outcomes = deliverOne(session, tag: "address")
        XCTAssertEqual(session.peer, "127.0.0.3:\(relay.port)")
        session.close()
        XCTAssertEqual(outcomes.map(\.kind), [.delivered], "\(outcomes)")
        XCTAssertEqual(try relay.records().count, 1, "the relay listens on 127.0.0.3 only")
    }

    func testIPAddressTextRoundTrips() {
        for text in ["127.0.0.2", "192.0.2.255", "::1", "2001:db8::25", "fe80::1:2"] {
            XCTAssertEqual(IPAddress(text)?.description, text)
        }
        for text in ["", "127.0.0", "[::1]", "example.org", "1.2.3.4:25", "::1%lo"] {
            XCTAssertNil(IPAddress(text), text)
        }
        XCTAssertEqual(IPAddress("127.0.0.2")?.description(port: 25), "127.0.0.2:25")
        XCTAssertEqual(IPAddress("::1")?.description(port: 25), "[::1]:25")
    }
}
