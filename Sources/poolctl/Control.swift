// The poolctl commands that steer a running daemon through its control socket (pause,
// resume, hold, release, flush, reload, stop), and the two that work on the spool itself
// with or without a daemon: `show JOB` (envelope and each recipient's state from the
// journal) and `requeue JOB` (a fixed job back from bad/).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum Control {
    static func socketPath(_ config: SiteConfiguration) -> String {
        config.controlSocket ?? Spool(root: config.spoolDirectory).root + "/.poold.sock"
    }

    /// Sends one command line; prints the answer; exits 0 when it starts with OK.
    static func send(_ config: SiteConfiguration, _ words: [String]) -> Never {
        let path = socketPath(config)
        guard Spool(root: config.spoolDirectory).daemonPID() != nil else {
            fail("poold is not running on \(config.spoolDirectory) (nothing to \(words[0]))")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { fail("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { fail("control socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { fail("cannot reach poold at \(path): \(String(cString: strerror(errno)))") }
        let line = Array((words.joined(separator: " ") + "\n").utf8)
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        close(fd)
        let text = String(decoding: answer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { fail("no answer from poold at \(path)") }
        if text.hasPrefix("OK") {
            print(text)
            exit(0)
        }
        fail(text.hasPrefix("ERR ") ? String(text.dropFirst(4)) : text)
    }

    /// `show JOB`: where the job is, its envelope, and each recipient's state.
    static func show(_ config: SiteConfiguration, _ target: String) -> Never {
        let spool = Spool(root: config.spoolDirectory)
        guard let name = JobName(target) else { fail("'\(target)' is not a job name (like A00012345.MAIL)") }
        let places = [(spool.root, "queued"), (spool.deferredDirectory, "deferred"), (spool.holdDirectory, "held"), (spool.badDirectory, "bad")]
        guard let (directory, place) = places.first(where: { FileSystem.exists($0.0 + "/" + name.fileName) }) else {
            fail("no job \(name) in \(spool.root) (queued, deferred, held or bad)")
        }
        let path = directory + "/" + name.fileName
        guard let st = try? FileSystem.status(path) else { fail("cannot read \(path)") }
        print("\(name)  \(place)  \(Status.bytes(st.size))  pool \(name.pool)\(name.spoolID.map { "  spool id \($0)" } ?? "")")
        print("path: \(path)")
        if place == "bad" {
            let why = (try? FileSystem.readAll(path + ".why")).map { String(decoding: $0, as: UTF8.self) } ?? "?"
            print("why: \(why.trimmingCharacters(in: .whitespacesAndNewlines))")
            exit(0)
        }
        let job: BSMTPJob
        do {
            switch try JobReader.read(path: path) {
            case .bsmtp(let plain, _): job = plain
            case .merge(let merge):
                MergeCommands.describe(merge, journal: spool.journalPath(for: name, inode: st.inode))
                exit(0)
            }
        } catch {
            fail("\(name): \(error)")
        }
        let journal = try? Journal(path: spool.journalPath(for: name, inode: st.inode))
        if let j = journal, j.attempts > 0 {
            let next = j.nextAttempt.map { Date(timeIntervalSince1970: $0) }.map { "\($0)" } ?? "-"
            print("attempts: \(j.attempts), next attempt: \(next)")
        }
        for tx in job.transactions {
            print("transaction \(tx.index + 1): MAIL FROM:<\(tx.sender)>\(tx.senderParameters.isEmpty ? "" : " " + tx.senderParameters.joined(separator: " "))  message \(Status.bytes(tx.wireSize))")
            for (i, r) in tx.recipients.enumerated() {
                let key = RecipientKey(tx.index, i)
                let state: String
                switch journal?.decided[key] {
                case .delivered?: state = "delivered"
                case .failed?: state = "failed (bounced)"
                default: state = journal?.deferredReplies[key].map { "deferred: \($0)" } ?? "waiting"
                }
                print("  <\(r.address)>  \(state)")
            }
        }
        exit(0)
    }

    /// `requeue JOB`: a job from bad/, checked again, back into the spool. Only the holder
    /// of the spool's lock touches bad/: the running daemon does it when asked; with no
    /// daemon, poolctl takes the lock for the moment it needs.
    static func requeue(_ config: SiteConfiguration, _ target: String) -> Never {
        let spool = Spool(root: config.spoolDirectory)
        guard let name = JobName(target) else { fail("'\(target)' is not a job name") }
        let lock: FileDescriptor?
        do {
            lock = try spool.lock(recordingPID: false)
        } catch {
            fail("cannot open the spool's lock \(spool.lockPath): \(error)")
        }
        guard let lock else { send(config, ["requeue", name.fileName]) }
        defer { lock.close() }
        let path = spool.path(of: name, in: .bad)
        guard FileSystem.exists(path) else { fail("no \(name) in \(spool.badDirectory)") }
        do {
            _ = try JobReader.read(path: path)
        } catch {
            fail("\(name) is still not a valid job: \(error) (fix \(path) first)")
        }
        do {
            try spool.bringBack(name, from: .bad)
            try FileSystem.unlink(path + ".why", missingOK: true)
        } catch let error as SystemError where error.isExisting {
            fail("a job named \(name) is already in the spool")
        } catch {
            fail("cannot requeue \(name): \(error)")
        }
        print("\(name) is back in the spool")
        exit(0)
    }
}
