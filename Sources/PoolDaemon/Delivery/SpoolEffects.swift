// What an attempt asks of the spool, as values, and the small executor that carries them
// out in order. The order is the safety: a DSN is on disk before its recipients are
// crossed off (F lines); decisions are in the journal before the job moves to deferred/
// or back to the queue; a finished job's line is in its worker's finished log before the
// reaper removes it, and the journal goes only after the job file. A failure of one step
// is logged naming the file and turns into the safe alternative (recipients stay
// deferred, the job stays where it is); nothing is swallowed.

import SMTPClient
import SpoolKit
import Synchronization

enum SpoolEffect {
    /// Append these decisions to the journal (a plain job's own; a merge pass's, by row).
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
    /// A slice of a merge pass ended (`completed`: every row has its outcome).
    case sliceEnd(completed: Bool)
    /// A line for the log and the worker's log file.
    case note(Log.Level, String)
    /// The line each transaction leaves in the log and the worker's log file.
    case transactionNote(TransactionNote)
}

/// Where an attempt left its job, for the queue and the counters.
enum Disposition {
    case finished
    /// Finished, and its line is in the finished log: the reaper removes the file and then
    /// tells the queue.
    case leaving
    case deferred(JobPlace, due: Double)
    case putBack
    case quarantined
    case vanished
}

/// A job whose attempt (or pass) ended, and how.
struct Settlement {
    var job: QueuedJob
    var disposition: Disposition
    var counters = AttemptCounters()
}

struct SpoolExecutor {
    let spool: Spool
    let journals: JournalRegistry
    let bounces: BounceReport
    let merges: MergeRuns
    let settings: DeliverySettings
    let heloName: String
    let clock: WallClock
    /// LOG_DIR's file for this worker (nil without LOG_DIR).
    let log: WorkerLog?
    /// DIST_FORWARD: a share message refused for good is received here instead of bounced.
    let distribution: Distribution?
    /// This worker's finished log (nil: finished jobs are unlinked at once).
    let finished: FinishedWriter?

    /// Applies `effects` to `attempt` in order; returns the jobs whose attempt ended.
    func apply(_ effects: [SpoolEffect], to attempt: inout Attempt) -> [Settlement] {
        var settled: [Settlement] = []
        var unreported: [Bounce.Failure] = []
        for effect in effects {
            switch effect {
            case .journal(let records):
                write(records, for: &attempt)
            case .bounce(let bounce):
                if distribution != nil, bounce.isShareMessage, case .plain(let a) = attempt, a.content.isShare {
                    // A share the relays refused for good: its rows are delivered here.
                    processHere(bounce, of: a, attempt: &attempt)
                    continue
                }
                do {
                    try bounces.spool(bounce, job: attempt.job.name)
                    write(bounce.failures.map { .init(.failed, $0.key, reply: $0.outcome.diagnostic) }, for: &attempt)
                } catch {
                    Log.error("job=\(attempt.job.name): cannot spool the delivery status notification (\(error)); its \(bounce.failures.count) recipient(s) stay deferred")
                    attempt.bounceFailed(bounce)
                    unreported += bounce.failures
                }
            case .note(let level, let text):
                Log.write(level, text)
                log?.write(text)
            case .transactionNote(let note):
                var text: String?
                Log.write(.info) { line in
                    let start = line.length
                    note.write(into: &line)
                    if log != nil { text = line.text(from: start) }
                }
                if let text { log?.write(text) }
            case .finish, .expire, .deferral, .putBack:
                // The end of a plain job's attempt: the attempt is changed in place.
                let settlement = attempt.withPlain { a -> Settlement in
                    let disposition: Disposition
                    switch effect {
                    case .expire where !unreported.isEmpty:
                        // Some DSNs could not be spooled: those recipients wait, and are failed
                        // (and reported) again at the next attempt.
                        let records = unreported.map { Journal.Record(.deferred, $0.key, reply: $0.outcome.diagnostic) }
                        disposition = deferral(records, due: clock.seconds + settings.retrySchedule[0], &a)
                    case .deferral(let records, let due):
                        disposition = deferral(records, due: due, &a)
                    case .putBack:
                        syncOrLog(&a)
                        disposition = .putBack
                    default:  // .finish, or .expire with every DSN spooled
                        disposition = finish(&a)
                        if case .finish = effect, let id = a.content.shareID, a.counters.delivered > 0 {
                            distribution?.book.update(id, state: "accepted")
                        }
                    }
                    return Settlement(job: a.job, disposition: disposition, counters: a.counters)
                }
                if let settlement {
                    settled.append(settlement)
                } else {
                    Log.error("job=\(attempt.job.name): \(effect) does not apply to this attempt")
                }
            case .sliceEnd(let completed):
                guard case .slice(let a) = attempt else {
                    Log.error("job=\(attempt.job.name): \(effect) does not apply to this attempt")
                    continue
                }
                settled.append(Settlement(job: a.job, disposition: completed ? .finished : .putBack, counters: a.counters))
                if let ending = a.run.endSlice(a.index, completed: completed) {
                    settled.append(end(a.run, ending))
                }
            }
        }
        return settled
    }

    /// How a job that could not be attempted at all ends.
    func apply(_ opening: JobAttempt.Opening, job: QueuedJob) -> Disposition {
        switch opening {
        case .ready, .merge: return .putBack
        case .vanished:
            Log.info("job=\(job.name): gone from \(spool.directory(for: job.place)) before it was sent")
            return .vanished
        case .invalid(let reason):
            do {
                try spool.quarantine(job.name, from: job.place, reason: "\(job.name): \(reason)")
                Log.error("job=\(job.name): not a valid job, moved to bad/: \(reason)")
            } catch {
                Log.error("job=\(job.name): not a valid job (\(reason)) and cannot be moved to bad/: \(error)")
            }
            return .quarantined
        case .unreadable(let reason):
            Log.error("job=\(job.name): \(reason); will try again")
            return .deferred(job.place, due: clock.seconds + settings.retrySchedule[0])
        }
    }

    /// A share message refused for good: the share it carries is received here, and its
    /// recipient (the peer's address) is crossed off without a DSN.
    private func processHere(_ bounce: Bounce, of attempt: JobAttempt, attempt whole: inout Attempt) {
        guard let distribution, case .transaction(let path, let tx) = bounce.headers else { return }
        let reply = bounce.failures.first?.outcome.diagnostic ?? ""
        do {
            let message = try MessageReader(path: path, transaction: tx).unstuffed()
            let name = try distribution.receiveHere(message, now: clock.seconds)
            Log.warning("job=\(attempt.job.name): share refused for good by the relay (\(reply)); processed here as \(name)")
            if let id = attempt.content.shareID { distribution.book.update(id, state: "processed here (refused: \(reply))") }
            write(bounce.failures.map { .init(.failed, $0.key, reply: "processed here as \(name): \($0.outcome.diagnostic)") }, for: &whole)
        } catch {
            Log.error("job=\(attempt.job.name): share refused by the relay (\(reply)) and cannot be processed here: \(error); it stays deferred")
            whole.bounceFailed(bounce)
        }
    }

    // MARK: journals

    private func write(_ records: [Journal.Record], for attempt: inout Attempt) {
        guard !records.isEmpty else { return }
        switch attempt {
        case .plain:
            attempt.withPlain { a in
                do {
                    if try a.appendJournal(records) { journals.insert(a.journalPath) }
                } catch {
                    // Without the lines the next attempt would send these again: stop here.
                    Log.error("job=\(a.job.name): cannot write its journal \(a.journalPath): \(error); stopping this attempt")
                    a.stop()
                }
            }
        case .slice(var a):
            do {
                try a.run.record(delivered: records.filter { $0.fact == .delivered }.map(\.key.transaction),
                                 failed: records.filter { $0.fact == .failed }.map(\.key.transaction),
                                 deferred: records.filter { $0.fact == .deferred }.map { ($0.key.transaction, $0.reply) })
                journals.insert(a.run.journalPath)
            } catch {
                Log.error("job=\(a.run.job.name): cannot write its journal \(a.run.journalPath): \(error); stopping this slice")
                a.stop()
                attempt = .slice(a)
            }
        case .moving: break
        }
    }

    private func syncOrLog(_ attempt: inout JobAttempt) {
        do {
            if try attempt.journalUnjournaled() { journals.insert(attempt.journalPath) }
            try attempt.journal?.sync()
        } catch {
            Log.error("job=\(attempt.job.name): cannot sync its journal \(attempt.journalPath): \(error)")
        }
    }

    // MARK: the end of a plain job's attempt

    /// Every recipient is decided: the job's line goes in the finished log and the reaper
    /// removes it; without a finished log (or when its line cannot be written), it is
    /// removed here.
    private func finish(_ attempt: inout JobAttempt) -> Disposition {
        let journal = attempt.journal?.exists == true ? attempt.journalPath : nil
        if let finished {
            let mark = FinishedMark(name: attempt.job.name, place: attempt.job.place, inode: attempt.file.inode, changed: attempt.file.changed)
            do {
                try finished.finish(attempt.job, mark: mark, path: attempt.path, journal: journal)
                if let journal { journals.remove(journal) }
                return .leaving
            } catch {
                Log.warning("job=\(attempt.job.name): cannot write its line in the finished log (\(error)); removing it now")
            }
        }
        do {
            try spool.finish(attempt.job.name, in: attempt.job.place, journal: journal)
            if let journal { journals.remove(journal) }
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
            _ = try attempt.appendJournal(records)
            try attempt.journal!.recordAttempt(at: attempt.began, next: due)
            journals.insert(attempt.journalPath)
        } catch {
            Log.error("job=\(name): cannot record its deferral in \(attempt.journalPath): \(error)")
            return .deferred(attempt.job.place, due: due)
        }
        return moveToDeferred(name, from: attempt.job.place, due: due)
    }

    private func moveToDeferred(_ name: JobName, from place: JobPlace, due: Double) -> Disposition {
        do {
            try spool.moveToDeferred(name, from: place)
        } catch {
            Log.error("job=\(name): cannot move it to \(spool.deferredDirectory): \(error); it waits where it is")
            return .deferred(place, due: due)
        }
        return .deferred(.deferred, due: due)
    }

    // MARK: the end of a merge pass

    /// The job of `run` after its last slice ended.
    private func end(_ run: MergeRun, _ ending: MergeRun.Ending) -> Settlement {
        merges.remove(run)
        defer { run.closeJournal() }
        let job = run.job
        switch ending {
        case .finished:
            Log.notice("job=\(job.name): every row decided (pass \(run.passes + 1)); the job leaves the spool")
            return Settlement(job: job, disposition: finishMerge(run))
        case .unfinished:
            do {
                try run.syncJournal()
            } catch {
                Log.error("job=\(job.name): cannot sync its journal \(run.journalPath): \(error)")
            }
            return Settlement(job: job, disposition: .putBack)
        case .rowsLeft where run.expired:
            return Settlement(job: job, disposition: expire(run))
        case .rowsLeft:
            let schedule = settings.retrySchedule
            let due = clock.seconds + schedule[min(run.passes, schedule.count - 1)]
            do {
                try run.recordPass(next: due)
                journals.insert(run.journalPath)
            } catch {
                Log.error("job=\(job.name): cannot record its deferral in \(run.journalPath): \(error)")
                return Settlement(job: job, disposition: .deferred(job.place, due: due))
            }
            Log.notice("job=\(job.name): pass \(run.passes) ended with rows deferred; next pass at \(Int(due))")
            return Settlement(job: job, disposition: moveToDeferred(job.name, from: job.place, due: due))
        }
    }

    private func finishMerge(_ run: MergeRun) -> Disposition {
        do {
            try spool.finish(run.job.name, in: run.job.place, journal: run.journalPath)
            journals.remove(run.journalPath)
            return .finished
        } catch {
            Log.error("job=\(run.job.name): every row decided but cannot remove \(run.path): \(error)")
            return .putBack
        }
    }

    /// QUEUE_LIFETIME is over: each row still deferred fails, with a DSN to its sender.
    private func expire(_ run: MergeRun) -> Disposition {
        let job = run.job
        do {
            let rows = try run.deferredRows()
            Log.warning("job=\(job.name): \(rows.count) row(s) deferred past QUEUE_LIFETIME; failing them")
            for (row, message) in try run.render(rows: rows.keys.sorted(), heloName: heloName, clock: clock) {
                let outcome = RecipientOutcome(.failed, origin: .local("delivery time expired; last reply: \(rows[row] ?? "")"), status: .expired)
                try bounces.spool(Bounce(sender: message.sender, headers: .message(message.bytes), arrival: run.path,
                                         failures: [.init(key: RecipientKey(row, 0), recipient: Recipient(address: message.recipient), outcome: outcome)],
                                         relay: nil), job: job.name)
                try run.record(delivered: [], failed: [row], deferred: [])
            }
        } catch {
            Log.error("job=\(job.name): cannot fail its expired rows: \(error); they wait")
            return .deferred(job.place, due: clock.seconds + settings.retrySchedule[0])
        }
        return finishMerge(run)
    }
}
