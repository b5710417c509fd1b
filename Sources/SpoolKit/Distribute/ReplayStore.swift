// The record of shares already spooled here, so that a redelivered or replayed share is
// never spooled twice, even after its job was delivered and removed:
// `SPOOL_DIR/.shares/<sha256 of the share id>`, one small file per share (its id, the job it
// became, when). Only `poolctl receive` writes it (as the user the MTA runs it as, the
// one that writes the spool); the daemon never reads it. A record is kept for as long as
// its share could still be accepted (`ShareFreshness.maximumAge` plus the clock skew) and
// a day more, then swept, at most once an hour, by a later `poolctl receive`.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// How old a share may be, and how far ahead of this clock its time may lie. The age
/// must cover the primary's QUEUE_LIFETIME (default 5d) and the MTAs' queues on the way.
public struct ShareFreshness: Sendable, Equatable {
    /// A share signed longer ago than this is refused (77).
    public var maximumAge: Int64 = 7 * 86_400
    /// A share may be signed this far in the future of this clock (clocks drift).
    public var clockSkew: Int64 = 15 * 60

    public init() {}

    /// Why a share signed at `time` is refused at `now`, or nil.
    public func problem(time: Int64, now: Int64) -> String? {
        if now - time > maximumAge {
            return "too old: signed \(describe(now - time)) ago, the limit is \(describe(maximumAge))"
        }
        if time - now > clockSkew {
            return "signed \(describe(time - now)) in the future (more than the \(describe(clockSkew)) of clock skew allowed)"
        }
        return nil
    }

    /// How long a record must be kept: while its share could still be accepted, and a day.
    public var recordLifetime: Int64 { maximumAge + clockSkew + 86_400 }

    /// `7d`, `15m`, `7d0h0m`: whole units when they are whole.
    private func describe(_ seconds: Int64) -> String {
        let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60)
        if seconds > 0 && seconds % 86_400 == 0 { return "\(d)d" }
        if seconds >= 3600 && seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds >= 60 && seconds % 60 == 0 { return "\(seconds / 60)m" }
        if d > 0 { return "\(d)d\(h)h\(m)m" }
        if h > 0 { return "\(h)h\(m)m" }
        return m > 0 ? "\(m)m\(s)s" : "\(s)s"
    }
}

public struct ReplayStore: Sendable {
    public let directory: String
    /// How often the records are swept.
    static let sweepInterval: Double = 3600
    static let sweepStamp = ".swept"

    public init(spool: Spool) { directory = spool.root + "/.shares" }

    /// The record's file name for a share id.
    static func recordName(for id: String) throws(DistributeError) -> String {
        try SHA256Digest.hex(Array(id.utf8))
    }

    /// True when the share was spooled here before.
    public func contains(id: String) throws -> Bool {
        FileSystem.exists(directory + "/" + (try ReplayStore.recordName(for: id)))
    }

    /// Notes that share `id` became job `job`, durably.
    public func record(id: String, job: JobName, time: Int64) throws {
        try FileSystem.makeDirectory(directory, mode: 0o750)
        let text = "\(id)\n\(job.fileName)\n\(time)\n"
        try AtomicFile.write(directory: directory, name: try ReplayStore.recordName(for: id), bytes: Array(text.utf8), mode: 0o640)
    }

    /// Removes records older than `lifetime` seconds, when the last sweep is an hour old.
    /// Returns how many were removed; a record that cannot be removed stays for next time.
    @discardableResult
    public func sweep(lifetime: Int64, now: Double) -> Int {
        let stamp = directory + "/" + ReplayStore.sweepStamp
        if let status = try? FileSystem.status(stamp), now - status.modified < ReplayStore.sweepInterval { return 0 }
        guard let names = try? FileSystem.names(in: directory) else { return 0 }
        if let fd = try? FileDescriptor.open(stamp, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o640) {
            try? fd.writeAll(Array("\(Int64(now))\n".utf8))  // a write sets the stamp's mtime
            fd.close()
        }
        var removed = 0
        for name in names where !name.hasPrefix(".") {
            let path = directory + "/" + name
            if let status = try? FileSystem.status(path), now - status.modified > Double(lifetime),
               (try? FileSystem.unlink(path, missingOK: true)) != nil {
                removed += 1
            }
        }
        AtomicFile.sweep(directory: directory, olderThan: 86_400, now: now)
        return removed
    }
}
