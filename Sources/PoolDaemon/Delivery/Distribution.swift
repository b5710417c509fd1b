// DIST_FORWARD on the primary (MISSION.md, "Distribute workers"): a job at or above the
// threshold is split by weight when a worker takes it. SELF's share is spooled here as a
// job of its own (marked a share, with a replay record so it is spooled once); each
// peer's share goes as a signed message, spooled as an ordinary job of the origin's pool,
// so windows, rate limits and TLS apply. A share message the relays refuse for good is
// received here instead (`ShareReceiver`, as a peer would) — processed locally, never
// bounced.
// Custody: every share is on disk (fsynced) before the origin job leaves the spool. A
// crash in between splits the job again at the restart into the same shares (their ids come
// from the job file's inode, time and the weights): SELF's share meets its record and is
// not spooled twice, and a peer receives a second copy of a message as a redelivery
// (spooled once). Only a change of the weights between the crash and the restart can give
// a row to two instances: a duplicate, never a loss.

import Foundation
import SMTPClient
import SpoolKit

/// The shares this instance sent in this run, for status and logs.
final class ShareBook: Sendable {
    private let entries = Locked<[String: ShareStatus]>([:])
    private let order = Locked<[String]>([])

    func add(_ status: ShareStatus) {
        entries.withLock { $0[status.id] = status }
        order.withLock { list in
            list.append(status.id)
            if list.count > Limits.sharesShown {
                let gone = list.removeFirst()
                _ = entries.withLock { $0.removeValue(forKey: gone) }
            }
        }
    }

    func update(_ id: String, state: String) { entries.withLock { $0[id]?.state = state } }

    func snapshot() -> [ShareStatus] {
        let ids = order.withLock { $0 }
        return entries.withLock { all in ids.compactMap { all[$0] } }
    }
}

struct Distribution: Sendable {
    let settings: DistributeSettings
    let key: ShareKey
    let heloName: String
    let spool: Spool
    let book: ShareBook
    /// Tells the daemon's index about a job spooled here (a drain has no watcher).
    let offer: @Sendable (JobName) -> Void

    /// Splits `job` (read as `content`) when DIST_FORWARD says so; true when it was split
    /// and has left the spool, false when it stays whole (and is delivered here as it is).
    func split(_ job: QueuedJob, _ content: SpoolJob, now: Double) -> Bool {
        guard case .distribute(let planned) = DistributePlan.decide(job: content, name: job.name, settings: settings) else {
            return false
        }
        let path = spool.path(of: job.name, in: job.place)
        do {
            let origin = ShareOrigin(name: job.name, heloName: heloName, token: ShareOrigin.token(of: try FileSystem.status(path)))
            var notes: [String] = []
            for share in planned {
                let shareContent = try ShareContent(share, of: content, path: path, origin: origin)
                let items = "\(share.kind.itemName) \(share.items.lowerBound + 1)-\(share.items.upperBound)"
                if share.isLocal {
                    let name = try spoolHere(shareContent, now: now)
                    if let job = JobName(name) { offer(job) }
                    book.add(ShareStatus(id: shareContent.id, origin: job.name.fileName, share: "\(share.index)/\(share.count)",
                                         peer: "SELF", items: items, job: name, state: "local"))
                    notes.append("share \(share.index)/\(share.count) (\(items)) stays here as \(name)")
                } else {
                    let (name, metadata) = try ShareMessage.spool(shareContent, key: key, time: Int64(now), in: spool)
                    offer(name)
                    book.add(ShareStatus(id: shareContent.id, origin: job.name.fileName, share: "\(share.index)/\(share.count)",
                                         peer: metadata.recipient, items: items, job: name.fileName, state: "queued"))
                    notes.append("share \(share.index)/\(share.count) (\(items)) to <\(metadata.recipient)> as \(name)")
                }
            }
            try spool.finish(job.name, in: job.place, journal: nil)
            Log.notice("job=\(job.name): distributed in \(planned.count) share(s): " + notes.joined(separator: "; "))
            return true
        } catch {
            // The shares spooled so far are safe; the job stays and is tried again (its
            // shares then meet their records).
            Log.error("job=\(job.name): cannot distribute it: \(error); it is delivered here instead")
            return false
        }
    }

    /// SELF's share, spooled here once: the replay store remembers it, so the split of a
    /// job that a crash interrupted does not spool it again.
    func spoolHere(_ content: ShareContent, now: Double) throws -> String {
        let store = ReplayStore(spool: spool)
        if try store.contains(id: content.id) { return "(spooled before: \(content.id))" }
        let name = try content.spool(in: spool)
        try store.record(id: content.id, job: name, time: Int64(now))
        return name.fileName
    }

    /// A share message received here (one the relays refused for good):
    /// the job it carries, spooled once.
    func receiveHere(_ message: [UInt8], now: Double) throws -> String {
        switch try ShareReceiver(spool: spool, key: key).receive(.bytes(message), now: Int64(now)) {
        case .spooled(let job, _, let warning):
            if let warning { Log.warning("share received here as \(job): \(warning)") }
            offer(job)
            return job.fileName
        case .alreadySpooled(let metadata):
            return "(spooled before: \(metadata.id))"
        }
    }

    /// Is the message of `transaction` in the job at `path` a share message?
    static func isShareMessage(path: String, transaction: Transaction) -> Bool {
        let headers = (try? DeliveryStatusNotification.headers(path: path, transaction: transaction)) ?? []
        return headers.firstRange(of: Array("\r\nX-Poold-Share-Version:".utf8)) != nil
            || headers.starts(with: Array("X-Poold-Share-Version:".utf8))
    }
}
