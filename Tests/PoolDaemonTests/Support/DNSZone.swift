// The DNS of direct-delivery tests: scripts/relays/dns_server.py (dnslib, in the venv) serving
// one zone on a free loopback port over UDP and TCP, bounded by --lifetime, stopped by its PID.

import Foundation
import XCTest

final class DNSZone {
    let port: UInt16
    let child: ChildProcess

    /// `zone`: master-file text, names fully qualified.
    init(_ zone: String, in directory: String, servfail: [String] = []) throws {
        try zone.write(toFile: directory + "/zone", atomically: true, encoding: .utf8)
        let ready = directory + "/dns.port"
        var arguments = [try TestTools.scripts + "/relays/dns_server.py", "--zone", directory + "/zone", "--host", "127.0.0.1",
                         "--port", "0", "--ready-file", ready, "--lifetime", "600"]
        for name in servfail { arguments += ["--servfail", name] }
        child = try ChildProcess("dns", executable: try TestTools.python, arguments: arguments, logTo: directory + "/dns.log")
        let deadline = Date().addingTimeInterval(20)
        var found: UInt16?
        while Date() < deadline, found == nil {
            found = (try? String(contentsOfFile: ready, encoding: .utf8)).flatMap { UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if found == nil { usleep(30_000) }
        }
        guard let found else { throw MissingTool(description: "dns_server.py did not start: \(child.output)") }
        port = found
    }

    /// The DNS_SERVER line for poold.
    var setting: String { "DNS_SERVER=127.0.0.1:\(port)" }

    func stop() { child.stop() }
}
