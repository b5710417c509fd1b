// The daemon's look at the spool: the first scan at start (queued jobs oldest first,
// deferred jobs with their journal's time, orphaned journals removed) and the jobs the
// watcher reports later, offered to the index.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

extension Daemon {
    /// Offers jobs seen in the spool directory to the index (new ones only).
    func offer(_ names: [JobName]) {
        var jobs: [JobOffer] = []
        for name in names {
            if queue.isKnown(name, in: .queued) { continue }
            guard let st = try? FileSystem.status(spool.path(of: name, in: .queued)), st.isRegular else { continue }
            jobs.append(JobOffer(name: name, place: .queued, size: st.size, due: nil))
        }
        queue.offer(jobs)
    }

    /// A job found by the first look at the spool.
    struct Found {
        var modified: Double
        var size: Int64
        var inode: UInt64
        var name: JobName
    }

    /// The first look at the spool: queued jobs oldest first, deferred jobs with the time
    /// their journal gives, and journals whose job is gone removed. A journal that cannot
    /// be read is named in the log, and its job waits for the first retry.
    /// One listing and one fstatat(2) per job (no path is built per job); the index gets
    /// the jobs in batches, so 100,000 jobs never exist twice over in memory.
    func scanSpool() throws -> (queued: Int, deferred: Int, pools: PoolSet, due: ChunkedFIFO<JobName>) {
        let existing: Set<String>
        do {
            existing = try spool.journals()
        } catch {
            throw StartError.refused("cannot list the journals in \(spool.stateDirectory): \(error)")
        }
        let firstRetry = config.retrySchedule[0]
        let now = clock.seconds
        /// When the job is due by its journal; nil when it has none.
        func due(_ name: JobName, inode: UInt64) -> Double? {
            guard !existing.isEmpty else { return nil }
            let path = spool.journalPath(for: name, inode: inode)
            guard existing.contains(path) else { return nil }
            do {
                return try Journal(path: path).nextAttempt
            } catch {
                Log.error("job=\(name): cannot read its journal \(path): \(error); it waits \(Int(firstRetry)) s rather than being sent again whole")
                return now + firstRetry
            }
        }
        var queued = try list(spool.root)
        queued.sort { ($0.modified, $0.name) < ($1.modified, $1.name) }
        var live: Set<String> = []
        var pools = PoolSet.none
        var dueNow = ChunkedFIFO<JobName>()
        var offers: [JobOffer] = []
        offers.reserveCapacity(min(queued.count, Daemon.scanBatch))
        var deferredCount = 0
        func offerBatch(force: Bool = false) {
            guard force || offers.count >= Daemon.scanBatch else { return }
            // In a drain, jobs not yet due are left alone.
            if draining { offers.removeAll { ($0.due ?? 0) > now } }
            queue.offer(offers)
            offers.removeAll(keepingCapacity: true)
        }
        for job in queued {
            pools.insert(job.name.pool)
            if !existing.isEmpty { live.insert("\(job.name.fileName).\(job.inode)") }
            if let next = due(job.name, inode: job.inode), next > now {
                // Deferred, but the crash came before the move to deferred/.
                var place = JobPlace.queued
                do {
                    try spool.moveToDeferred(job.name, from: .queued)
                    place = .deferred
                } catch {
                    Log.error("job=\(job.name): cannot move it to \(spool.deferredDirectory): \(error)")
                }
                offers.append(JobOffer(name: job.name, place: place, size: job.size, due: draining ? .infinity : next))
                deferredCount += 1
            } else {
                offers.append(JobOffer(name: job.name, place: .queued, size: job.size, due: nil))
                dueNow.append(job.name)
            }
            offerBatch()
        }
        let queuedCount = queued.count
        queued = []
        let deferredJobs: [Found]
        do {
            deferredJobs = try list(spool.deferredDirectory)
        } catch {
            Log.error("cannot list \(spool.deferredDirectory): \(error); its jobs wait until the next start")
            deferredJobs = []
        }
        for job in deferredJobs {
            pools.insert(job.name.pool)
            if !existing.isEmpty { live.insert("\(job.name.fileName).\(job.inode)") }
            offers.append(JobOffer(name: job.name, place: .deferred, size: job.size, due: due(job.name, inode: job.inode) ?? 0))
            deferredCount += 1
            offerBatch()
        }
        offerBatch(force: true)
        let orphans = Set(spool.orphans(among: existing, live: live))
        for orphan in orphans {
            do {
                try FileSystem.unlink(orphan, missingOK: true)
            } catch {
                Log.error("cannot remove the journal \(orphan) of a job that is gone: \(error)")
            }
        }
        for path in existing.subtracting(orphans) { journals.insert(path) }
        return (queuedCount, deferredCount, pools, dueNow)
    }

    /// Jobs offered to the index at once during the first scan.
    static let scanBatch = 4096

    /// The regular files with job names in `directory`, with their status.
    func list(_ directory: String) throws -> [Found] {
        let descriptor = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
        defer { descriptor.close() }
        var found: [Found] = []
        try FileSystem.forEachEntry(in: directory) { entry in
            guard entry.isRegular != false, let name = JobName(bytes: entry.name),
                  let st = try? FileSystem.status(of: name.fileName, in: descriptor), st.isRegular else { return }
            found.append(Found(modified: st.modified, size: st.size, inode: st.inode, name: name))
        }
        return found
    }
}
