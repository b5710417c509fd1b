// OpenSMTPD 6.8 (Debian's opensmtpd, unpacked under .tools/) as a relay for one test.
// Its paths are compiled in (/var/spool/smtpd, /run/smtpd.sock, the chroot
// /var/lib/opensmtpd/empty, /usr/libexec/opensmtpd) and so are its users (opensmtpd,
// opensmtpq): it runs as `smtpd -d -f smtpd.conf` in a private mount namespace where
// directories of the test are bound over /var/spool, /var/lib, /run and /usr/libexec,
// and /etc/passwd, /etc/group carry those users. What it offers: 8BITMIME, SIZE, DSN,
// ENHANCEDSTATUSCODES; no PIPELINING (it refuses pipelined commands), and after 100
// messages in a session MAIL FROM gets "452 4.5.3 … Too many messages sent" (its
// default `smtp limit max-mails 100`). Debian 12's build fails its own TLS handshakes,
// so no TLS here. Every recipient is delivered by an mda (store_message.sh) as the
// virtual user poolddeliver.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

final class OpenSMTPDRelay: TestMTA {
    let name = "OpenSMTPD"
    let port: UInt16
    let mailbox: Mailbox
    let directory: String
    private let child: ChildProcess

    init(in parent: String, label: String = "opensmtpd") throws {
        let smtpd = try MTATools.openSMTPD
        guard FileManager.default.isExecutableFile(atPath: smtpd) else {
            throw MissingTool(description: "\(smtpd) is missing: run scripts/install-test-deps (it unpacks Debian's opensmtpd under .tools/)")
        }
        // .tools/opensmtpd/usr/sbin/smtpd → .tools/opensmtpd/usr/libexec
        let libexec = URL(fileURLWithPath: smtpd).deletingLastPathComponent().deletingLastPathComponent().path + "/libexec"
        directory = parent + "/" + label
        let fm = FileManager.default
        for sub in ["", "/var-spool/smtpd", "/var-lib/opensmtpd/empty", "/run", "/mail"] {
            try fm.createDirectory(atPath: directory + sub, withIntermediateDirectories: true)
        }
        chmod(directory, 0o755)
        chmod(directory + "/var-spool/smtpd", 0o711)
        let users = try UserOverlay(in: directory, users: ["opensmtpd", "opensmtpq", "poolddeliver"])
        try users.chown(directory + "/mail", to: "poolddeliver", mode: 0o755)
        mailbox = Mailbox(directory: directory + "/mail")
        let store = try copyForRelay(try MTATools.storeScript, into: directory, as: "store_message.sh", mode: 0o755)

        port = freePort()
        let config = """
            # OpenSMTPD for a poold test (Tests/PoolDaemonTests/Support/OpenSMTPD.swift)
            table deliver { "@" = "poolddeliver" }
            listen on 127.0.0.1 port \(port)
            action "store" mda "\(store) \(directory)/mail '%{sender}' '%{rcpt}'" virtual <deliver>
            match from any for any action "store"

            """
        let configPath = directory + "/smtpd.conf"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        chmod(configPath, 0o644)
        child = try startInPrivateNamespace("opensmtpd", in: directory, binds: [
            (users.passwd, "/etc/passwd"), (users.group, "/etc/group"),
            (directory + "/var-spool", "/var/spool"), (directory + "/var-lib", "/var/lib"),
            (directory + "/run", "/run"), (libexec, "/usr/libexec"),
        ], command: [smtpd, "-d", "-f", configPath], log: directory + "/smtpd.log")
        try waitForRelay(child, port: port, name: "OpenSMTPD")
    }

    func queuedFiles() -> Int {
        ["queue", "incoming", "temporary"].reduce(0) { $0 + regularFiles(under: directory + "/var-spool/smtpd/" + $1) }
    }

    /// smtpd -d logs to stderr: one line per session event and per delivery.
    var log: String { child.output }

    func stop() { child.stop() }

    deinit { child.stop() }
}
