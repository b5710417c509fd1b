// What a job attempt asks of the spool, as values, and the small executor that carries
// them out in order. The order is the safety: a DSN is on disk before its recipients are
// crossed off (F lines); decisions are in the journal before the job moves to deferred/
// or back to the queue; the journal goes only after the job file. A failure of one step
// is logged naming the file and turns into the safe alternative (recipients stay
// deferred, the job stays where it is); nothing is swallowed.

import SMTPClient
import SpoolKit
import Synchronization

enum SpoolEffect {
    /// Append these decisions (D lines) to the job's journal.
    case journal([Journal.Record])
    /// Spool a DSN for these recipients, then cross them off (F lines).
    case bounce(Bounce)
    /// Every recipient is decided: remove the job and its journal.
    case finish
    /// `count` recipients expired and are bounced: the job is done (as `finish`).
    case expire(count: Int)
    /// Some recipients wait: journal their last replies (T lines) and the attempt (A line),
    /// fsync, move the job to deferred/, due again at `due`.
    case deferral([Journal.Record], due: Double)
    /// The attempt stopped early: the job goes back to the queue as it stands.
    case putBack
    /// A line for the log and the worker's log file.
    case note(Log.Level, String)
}

/// Where an attempt left its job, for the queue and the counters.
enum Disposition {
    case finished
    case deferred(JobPlace, due: Double)
    case putBack
    case quarantined
    case vanished
}

struct SpoolExecutor {
    let spool: Spool
    let journals: JournalRegistry
    let bounces: BounceReport
    let clock: WallClock
    /// LOG_DIR's file for this worker (nil without LOG_DIR).
    let log: WorkerLog?

    /// Applies `effects` to `attempt`'s job in order; returns the disposition once an
    /// ending effect (finish, deferral, put back) is applied.
    func apply(_ effects: [SpoolEffect], to attempt: inout JobAttempt) -> Disposition? {
        let name = attempt.job.name
        var disposition: Disposition?
        var unreported: [Bounce.Failure] = []
        for effect in effects {
            switch effect {
            case .journal(let records):
                appendOrStop(records, to: &attempt)
            case .bounce(let bounce):
                do {
                    try bounces.spool(bounce, job: name, path: attempt.path)
                    appendOrStop(bounce.failures.map { .init(.failed, $0.key, reply: $0.outcome.diagnostic) }, to: &attempt)
                } catch {
                    Log.error("job=\(name): cannot spool the delivery status notification (\(error)); its \(bounce.failures.count) recipient(s) stay deferred")
                    attempt.bounceFailed(bounce)
                    unreported += bounce.failures
                }
            case .finish:
                disposition = finish(&attempt)
            case .expire where unreported.isEmpty:
                disposition = finish(&attempt)
            case .expire:
                // Some DSNs could not be spooled: those recipients wait, and are failed
                // (and reported) again at the next attempt.
                let records = unreported.map { Journal.Record(.deferred, $0.key, reply: $0.outcome.diagnostic) }
                disposition = deferral(records, due: clock.seconds + attempt.settings.retrySchedule[0], &attempt)
            case .deferral(let records, let due):
                disposition = deferral(records, due: due, &attempt)
            case .putBack:
                syncOrLog(&attempt)
                disposition = .putBack
            case .note(let level, let text):
                Log.write(level, text)
                log?.write(text)
            }
        }
        return disposition
    }

    /// How a job that could not be attempted at all ends.
    func apply(_ opening: JobAttempt.Opening, job: QueuedJob, retryAfter: Double) -> Disposition {
        switch opening {
        case .ready: return .putBack
        case .vanished:
            Log.info("job=\(job.name): gone from \(spool.directory(for: job.place)) before it was sent")
            return .vanished
        case .invalid(let reason):
            do {
                try spool.quarantine(job.name, from: job.place, reason: "\(job.name): \(reason)")
                Log.error("job=\(job.name): not valid BSMTP, moved to bad/: \(reason)")
            } catch {
                Log.error("job=\(job.name): not valid BSMTP (\(reason)) and cannot be moved to bad/: \(error)")
            }
            return .quarantined
        case .unreadable(let reason):
            Log.error("job=\(job.name): \(reason); will try again")
            return .deferred(job.place, due: clock.seconds + retryAfter)
        }
    }

    private func appendOrStop(_ records: [Journal.Record], to attempt: inout JobAttempt) {
        guard !records.isEmpty else { return }
        do {
            try attempt.journal.append(records)
            journals.insert(attempt.journalPath)
        } catch {
            // Without the lines the next attempt would send these again: stop here.
            Log.error("job=\(attempt.job.name): cannot write its journal \(attempt.journalPath): \(error); stopping this attempt")
            attempt.stop()
        }
    }

    private func syncOrLog(_ attempt: inout JobAttempt) {
        do {
            try attempt.journal.sync()
        } catch {
            Log.error("job=\(attempt.job.name): cannot sync its journal \(attempt.journalPath): \(error)")
        }
    }

    private func finish(_ attempt: inout JobAttempt) -> Disposition {
        do {
            try spool.finish(attempt.job.name, in: attempt.job.place, journal: attempt.journal.exists ? attempt.journalPath : nil)
            journals.remove(attempt.journalPath)
            return .finished
        } catch {
            Log.error("job=\(attempt.job.name): delivered but cannot remove \(attempt.path): \(error)")
            syncOrLog(&attempt)
            return .putBack
        }
    }

    private func deferral(_ records: [Journal.Record], due: Double, _ attempt: inout JobAttempt) -> Disposition {
        let name = attempt.job.name
        do {
            try attempt.journal.append(records)
            try attempt.journal.recordAttempt(at: attempt.began, next: due)
            journals.insert(attempt.journalPath)
        } catch {
            Log.error("job=\(name): cannot record its deferral in \(attempt.journalPath): \(error)")
            return .deferred(attempt.job.place, due: due)
        }
        do {
            try spool.moveToDeferred(name, from: attempt.job.place)
        } catch {
            Log.error("job=\(name): cannot move it to \(spool.deferredDirectory): \(error); it waits where it is")
            return .deferred(attempt.job.place, due: due)
        }
        return .deferred(.deferred, due: due)
    }
}

/// The journal files that exist, so that a job without one (nearly all) costs no failed
/// open(2). Filled from a listing of `.state/` at start; kept by the workers after that.
final class JournalRegistry: Sendable {
    private let paths: Locked<Set<String>>
    init(_ initial: Set<String>) { paths = Locked(initial) }
    func contains(_ path: String) -> Bool { paths.withLock { $0.contains(path) } }
    func insert(_ path: String) { _ = paths.withLock { $0.insert(path) } }
    func remove(_ path: String) { _ = paths.withLock { $0.remove(path) } }
}
