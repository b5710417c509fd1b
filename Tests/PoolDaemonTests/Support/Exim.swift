// Exim 4.96 (Debian's exim4-daemon-light, unpacked under .tools/) as a relay for one
// test: `exim4 -C scripts/relays/exim.conf -D… -bdf -oX PORT` in a private mount
// namespace where the user Debian-exim exists (the binary looks that name up before it
// reads any configuration). The options of exim.conf are -D macros; spool, logs and
// delivered mail live in the test's directory. Exim writes a message to its spool
// before it says 250, so once the spool is empty every accepted message is delivered.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

final class EximRelay: TestMTA {
    struct Options {
        var pipelining = true
        /// 4.96 offers CHUNKING by default.
        var chunking = true
        /// (certificate, key) for STARTTLS.
        var certificate: (String, String)?
        /// Listen on a second port with TLS on connect (needs `certificate`).
        var smtps = false
        var authUser: String?
        var authSecret: String?
        /// "PLAIN", "LOGIN" or both.
        var authMechanisms: [String] = ["PLAIN", "LOGIN"]
        /// smtp_accept_max_per_connection (Exim's default is 1000).
        var maxMessagesPerConnection: Int?
        /// Distribute peers: mail for poold@<domain> is piped into this command (run as
        /// Debian-exim), as a peer's MTA pipes it into `poolctl receive`.
        var pipes: [String: [String]] = [:]
    }

    let name = "Exim"
    let port: UInt16
    /// The TLS-on-connect port when `smtps` is set.
    let smtpsPort: UInt16?
    let mailbox: Mailbox
    let directory: String
    private let child: ChildProcess
    private let users: UserOverlay

    init(in parent: String, _ options: Options = Options(), label: String = "exim") throws {
        let exim = try MTATools.exim
        guard FileManager.default.isExecutableFile(atPath: exim) else {
            throw MissingTool(description: "\(exim) is missing: run scripts/install-test-deps (it unpacks Debian's exim4-daemon-light under .tools/)")
        }
        directory = parent + "/" + label
        let fm = FileManager.default
        for sub in ["", "/spool", "/log", "/mail", "/tls"] {
            try fm.createDirectory(atPath: directory + sub, withIntermediateDirectories: true)
        }
        chmod(directory, 0o755)
        users = try UserOverlay(in: directory, users: ["Debian-exim"])
        for sub in ["/spool", "/log", "/mail"] { try users.chown(directory + sub, to: "Debian-exim", mode: 0o750) }
        mailbox = Mailbox(directory: directory + "/mail")
        let config = try copyForRelay(try TestTools.scripts + "/relays/exim.conf", into: directory, as: "exim.conf", mode: 0o644)
        _ = try copyForRelay(try MTATools.storeScript, into: directory, as: "store_message.sh", mode: 0o755)

        port = freePort()
        smtpsPort = options.smtps ? freePort() : nil
        var macros = ["POOLD_DIR=\(directory)", "POOLD_EXIM=\(exim)"]
        if !options.pipelining { macros.append("POOLD_NO_PIPELINING=1") }
        if !options.chunking { macros.append("POOLD_NO_CHUNKING=1") }
        if let (certificate, key) = options.certificate {
            let cert = try copyForRelay(certificate, into: directory + "/tls", as: "server.pem", user: "Debian-exim", overlay: users)
            let keyCopy = try copyForRelay(key, into: directory + "/tls", as: "server.key", user: "Debian-exim", overlay: users)
            macros += ["POOLD_CERT=\(cert)", "POOLD_KEY=\(keyCopy)"]
        }
        if let smtpsPort { macros.append("POOLD_SMTPS_PORT=\(smtpsPort)") }
        if let user = options.authUser, let secret = options.authSecret {
            macros += ["POOLD_AUTH_USER=\(user)", "POOLD_AUTH_SECRET=\(secret)"]
            macros += options.authMechanisms.map { "POOLD_AUTH_\($0)=1" }
        }
        if let max = options.maxMessagesPerConnection { macros.append("POOLD_MAX_MESSAGES=\(max)") }
        if !options.pipes.isEmpty {
            var script = "#!/bin/sh\n# Mail for poold@<domain>: the Distribute peer's poolctl receive.\ncase \"$DOMAIN\" in\n"
            for (domain, command) in options.pipes.sorted(by: { $0.key < $1.key }) {
                script += "  \(domain)) exec \(command.map { "'\($0)'" }.joined(separator: " ")) ;;\n"
            }
            script += "esac\nexit 67\n"
            try script.write(toFile: directory + "/peer_pipe.sh", atomically: true, encoding: .utf8)
            chmod(directory + "/peer_pipe.sh", 0o755)
            macros.append("POOLD_PIPE_DOMAINS=" + options.pipes.keys.sorted().joined(separator: ":"))
        }
        let ports = ([port] + (smtpsPort.map { [$0] } ?? [])).map(String.init).joined(separator: ":")
        let command = [exim, "-C", config] + macros.map { "-D" + $0 } + ["-bdf", "-oX", ports, "-oP", directory + "/exim.pid"]
        child = try startInPrivateNamespace("exim", in: directory,
                                            binds: [(users.passwd, "/etc/passwd"), (users.group, "/etc/group")],
                                            command: command, log: directory + "/exim.out")
        try waitForRelay(child, port: port, name: "Exim", extraLog: directory + "/log/paniclog")
        if let smtpsPort { try waitForRelay(child, port: smtpsPort, name: "Exim (SMTPS)") }
    }

    func queuedFiles() -> Int { regularFiles(under: directory + "/spool/input") }

    var log: String {
        ((try? String(contentsOfFile: directory + "/log/mainlog", encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: directory + "/log/paniclog", encoding: .utf8)) ?? "")
            + child.output
    }

    /// The main log's lines for accepted messages ("<=").
    var acceptLines: [String] {
        ((try? String(contentsOfFile: directory + "/log/mainlog", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init).filter { $0.contains(" <= ") }
    }

    /// The command that carried each accepted message ("DATA" or "BDAT n LAST"), in the
    /// order Exim logged them (exim.conf's data ACL writes it).
    var dataCommands: [String] {
        ((try? String(contentsOfFile: directory + "/log/mainlog", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
            guard let range = line.range(of: " came by ") else { return nil }
            return String(line[range.upperBound...]).uppercased()
        }
    }

    func stop() { child.stop() }

    /// Gives a directory (a peer's spool) to Debian-exim, so that its pipe may write there.
    func handOver(_ path: String, mode: mode_t = 0o755) throws { try users.chown(path, to: "Debian-exim", mode: mode) }

    deinit { child.stop() }
}
