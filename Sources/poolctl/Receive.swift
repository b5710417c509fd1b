// `poolctl receive`: the program a peer's MTA pipes each Distribute share into (an alias
// or a pipe transport). It reads one message on standard input, and its exit status is
// all the MTA understands (sysexits): 0 spooled, or spooled before; 65 malformed and 77
// refused (bad or missing signature, too old), which the MTA bounces; 75 temporary
// trouble — the spool, the disk, and this instance's own setup (configuration, DIST_SECRET)
// — which the MTA retries, so a fault on this side never loses a share. One line per
// outcome on standard error (the MTA records it) and to syslog (facility mail).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum Receive {
    static let temporaryFailure: Int32 = 75

    static func run(_ configPath: String, _ arguments: [String]) -> Never {
        guard arguments.isEmpty else { fail("receive takes no arguments (the share comes on standard input)", status: 64) }
        let config: SiteConfiguration
        do {
            config = try SiteConfiguration.load(path: configPath)
        } catch {
            finish(.temporary("\(error)"))
        }
        guard let secret = config.distribute.secretFile else {
            finish(.temporary("\(configPath): no DIST_SECRET (the key shared with the primary): shares cannot be checked"))
        }
        guard ShareKey.isSigningAvailable else { finish(.temporary("\(DistributeError.signingUnavailable)")) }
        let key: ShareKey
        do {
            key = try ShareKey.load(path: secret)
        } catch {
            finish(.temporary("\(configPath): \(error)"))
        }
        let spool = Spool(root: config.spoolDirectory)
        guard (try? FileSystem.status(spool.root))?.isDirectory == true else {
            finish(.temporary("SPOOL_DIR \(spool.root) is not a directory"))
        }
        let receiver = ShareReceiver(spool: spool, key: key)
        let now = Int64(Date().timeIntervalSince1970)
        do {
            switch try receiver.receive(.descriptor(FileDescriptor(rawValue: 0)), now: now) {
            case .spooled(let job, let metadata, let warning):
                log(LOG_INFO, "spooled share \(metadata.id) (\(metadata.summary) from \(metadata.heloName)) as \(job.fileName)")
                if let warning { log(LOG_WARNING, warning) }
            case .alreadySpooled(let metadata):
                log(LOG_INFO, "share \(metadata.id) (\(metadata.summary)) was spooled before: nothing done")
            }
            exit(0)
        } catch {
            finish(error)
        }
    }

    /// Logs a refusal and exits with its status, after reading the rest of the message:
    /// an MTA whose pipe is closed early sees a write error, which it may report (and act
    /// on) instead of the status.
    static func finish(_ fault: ShareFault) -> Never {
        var sink = [UInt8](repeating: 0, count: 65536)
        while let n = try? sink.withUnsafeMutableBytes({ try FileDescriptor(rawValue: 0).read(into: $0) }), n > 0 {}
        let what: String
        switch fault {
        case .malformed: what = "malformed, bounced"
        case .refused: what = "refused, bounced"
        case .temporary: what = "temporary failure, the MTA will retry"
        }
        log(fault.exitStatus == temporaryFailure ? LOG_WARNING : LOG_ERR, "\(what) (\(fault.exitStatus)): \(fault)")
        exit(fault.exitStatus)
    }

    /// One line on standard error and to syslog.
    static func log(_ priority: Int32, _ message: String) {
        FileHandle.standardError.write(Data("poolctl receive: \(message)\n".utf8))
        openlog(nil, LOG_PID, LOG_MAIL)  // nil: the program's name
        message.withCString { text in
            withVaList([text]) { vsyslog(priority, "receive: %s", $0) }
        }
        closelog()
    }
}
