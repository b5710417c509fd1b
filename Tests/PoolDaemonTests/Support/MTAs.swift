// Real MTAs as relays for the interop tests: Exim 4.96 (Support/Exim.swift), OpenSMTPD
// 6.8 (Support/OpenSMTPD.swift) and a private Postfix instance (Support/Postfix.swift).
// Each one:
//   - runs on a free loopback port with everything (configuration, queue, logs, the
//     mail it delivers) in the test's temporary directory; nothing under /etc or /var
//     is written, the system's Postfix is never started;
//   - is bounded in time (`timeout 600`, or Postfix's `master -e 600`) and stopped by its
//     PID, or `postfix -c DIR stop`, when the test is done with it;
//   - delivers every message it accepts into files (scripts/relays/store_message.sh),
//     which `delivered(comparedWith:)` reads back once its queue is empty.
// Exim and OpenSMTPD come unpacked from their .debs (scripts/install-test-deps); they
// look up compiled-in users and paths, which a private mount namespace (`unshare -m`)
// provides with bind mounts. A missing tool is a failure that says how to get it.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

struct RelayTrouble: Error, CustomStringConvertible {
    var description: String
}

enum MTATools {
    static var exim: String {
        get throws { try TestTools.require("POOLD_EXIM", fallback: TestTools.repository + "/.tools/exim4-daemon-light/usr/sbin/exim4") }
    }
    static var openSMTPD: String {
        get throws { try TestTools.require("POOLD_OPENSMTPD", fallback: TestTools.repository + "/.tools/opensmtpd/usr/sbin/smtpd") }
    }
    /// The installed postfix command (the private instance needs the package's user and
    /// daemon directory; scripts/install-test-deps installs it unless another MTA holds
    /// the MTA slot).
    static var postfix: String {
        get throws { try TestTools.require("POOLD_POSTFIX", fallback: "/usr/sbin/postfix") }
    }
    static var storeScript: String { get throws { try TestTools.scripts + "/relays/store_message.sh" } }
}

/// A real MTA running for one test.
protocol TestMTA: AnyObject {
    var name: String { get }
    var port: UInt16 { get }
    var mailbox: Mailbox { get }
    /// Files in its queue: messages accepted and not yet delivered (or bounced).
    func queuedFiles() -> Int
    /// Its log so far (for failure messages and checks).
    var log: String { get }
    func stop()
}

extension TestMTA {
    /// Waits until the relay has delivered all it accepted, then reads its mailbox (trace
    /// headers off, see `TraceHeaders`). After a drain everything accepted is queued, so
    /// an empty queue means every delivery file is written.
    func delivered(comparedWith expected: GeneratedJobs? = nil, timeout: Double = 90) throws -> [ReceivedMessage] {
        let settled = eventually(timeout: timeout) { queuedFiles() == 0 && mailbox.filesInProgress() == 0 }
        guard settled else {
            throw RelayTrouble(description: "\(name) still holds \(queuedFiles()) queue file(s) after \(Int(timeout)) s; its log ends:\n\(log.suffix(3000))")
        }
        return try mailbox.received(comparedWith: expected)
    }
}

/// Regular files below `path` (a relay's queue directories).
func regularFiles(under path: String) -> Int {
    guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
    var count = 0
    while let name = walker.nextObject() as? String {
        if (walker.fileAttributes?[.type] as? FileAttributeType) == .typeRegular, !name.hasSuffix(".lock") { count += 1 }
    }
    return count
}

func shellQuoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// Copies of /etc/passwd and /etc/group with the users an MTA looks up by a compiled-in
/// name, for a private mount namespace to bind over the real ones. A name the system
/// already has keeps its ids; a missing one gets a free id in 64900..<65000.
struct UserOverlay {
    let passwd: String
    let group: String
    private(set) var ids: [String: (uid: UInt32, gid: UInt32)] = [:]

    init(in directory: String, users: [String]) throws {
        passwd = directory + "/passwd"
        group = directory + "/group"
        var passwdText = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        var groupText = try String(contentsOfFile: "/etc/group", encoding: .utf8)
        var used = Set<UInt32>()
        var known: [String: (UInt32, UInt32)] = [:]
        for line in passwdText.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count > 3, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { continue }
            used.insert(uid)
            used.insert(gid)
            known[String(f[0])] = (uid, gid)
        }
        for line in groupText.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count > 2, let gid = UInt32(f[2]) { used.insert(gid) }
        }
        if !passwdText.hasSuffix("\n") { passwdText += "\n" }
        if !groupText.hasSuffix("\n") { groupText += "\n" }
        var next: UInt32 = 64900
        for name in users {
            if let existing = known[name] {
                ids[name] = existing
                continue
            }
            while used.contains(next) { next += 1 }
            guard next < 65000 else { throw RelayTrouble(description: "no free user id in 64900..<65000 for \(name)") }
            used.insert(next)
            ids[name] = (next, next)
            passwdText += "\(name):x:\(next):\(next):poold test relay:\(directory):/usr/sbin/nologin\n"
            groupText += "\(name):x:\(next):\n"
        }
        try passwdText.write(toFile: passwd, atomically: true, encoding: .utf8)
        try groupText.write(toFile: group, atomically: true, encoding: .utf8)
    }

    func chown(_ path: String, to user: String, mode: mode_t? = nil) throws {
        guard let id = ids[user] else { throw RelayTrouble(description: "no user \(user) in the overlay") }
        guard Glibc.chown(path, id.uid, id.gid) == 0 else { throw RelayTrouble(description: "chown \(path): errno \(errno)") }
        if let mode { Glibc.chmod(path, mode) }
    }
}

/// Runs `command` in a private mount namespace after bind-mounting each source over its
/// target there (the system keeps its own files), bounded by `timeout 600`. The script is
/// left in `directory` (start.sh) so a failure can be replayed by hand:
/// `unshare -m --propagation private sh DIR/start.sh`.
func startInPrivateNamespace(_ name: String, in directory: String, binds: [(source: String, target: String)],
                             command: [String], log: String) throws -> ChildProcess {
    var script = "#!/bin/sh\n# \(name) for a poold test: bind mounts seen by this process tree only, then exec.\nset -e\n"
    for bind in binds { script += "mount --bind \(shellQuoted(bind.source)) \(shellQuoted(bind.target))\n" }
    script += "exec " + command.map(shellQuoted).joined(separator: " ") + "\n"
    let path = directory + "/start.sh"
    try script.write(toFile: path, atomically: true, encoding: .utf8)
    for tool in ["/usr/bin/timeout", "/usr/bin/unshare", "/bin/mount"] where !FileManager.default.isExecutableFile(atPath: tool) {
        throw MissingTool(description: "\(tool) is missing: apt-get install coreutils util-linux mount")
    }
    return try ChildProcess(name, executable: "/usr/bin/timeout",
                            arguments: ["600", "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", path], logTo: log)
}

/// Waits for `port`, or fails with the relay's own words when it died first.
func waitForRelay(_ child: ChildProcess, port: UInt16, name: String, extraLog: String? = nil) throws {
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline {
        if (try? waitForPort(port, timeout: 0.2)) != nil { return }
        if !child.process.isRunning { break }
    }
    let more = extraLog.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
    throw RelayTrouble(description: "\(name) did not start listening on 127.0.0.1:\(port): \(child.output)\(more)")
}

/// Copies a file into `directory`, owned by `overlay`'s `user` (an MTA that drops
/// privileges reads it as that user).
func copyForRelay(_ file: String, into directory: String, as name: String, user: String? = nil, overlay: UserOverlay? = nil, mode: mode_t = 0o600) throws -> String {
    let target = directory + "/" + name
    try? FileManager.default.removeItem(atPath: target)
    try FileManager.default.copyItem(atPath: file, toPath: target)
    chmod(target, mode)
    if let user, let overlay { try overlay.chown(target, to: user) }
    return target
}
