// What an operator can ask of a running daemon, through the control socket or SIGHUP:
// reload, pause/resume a worker, hold/release a job or a pool, requeue a fixed bad job,
// flush the deferred queue, stop. Each answer is one or more lines, the last starting with
// OK or ERR. Every command answers at once: none waits for a worker's transaction.

import Foundation
import SpoolKit

extension Daemon {
    func command(_ line: String, peer: ControlPeer) -> String {
        let words = line.split(separator: " ").map(String.init)
        guard let verb = words.first?.lowercased() else { return "ERR empty command" }
        let argument = words.count > 1 ? words[1] : nil
        if verb != "ping" { Log.notice("control: \(peer): \(line)") }
        return operations.withLock { _ in
            switch (verb, argument) {
            case ("ping", _): return "OK poold \(getpid())"
            case ("reload", _): return reloadNow()
            case ("stop", _):
                DispatchQueue.global().async { self.shutdown() }
                return "OK stopping: finishing the transactions in hand"
            case ("flush", _): return "OK \(queue.flushDeferred()) deferred job(s) due now"
            case ("pause", let n?), ("resume", let n?):
                guard let id = Int(n), let worker = workers.first(where: { $0.spec.id == id }) else { return "ERR no worker \(n)" }
                if verb == "pause" { worker.pause() } else { worker.resume() }
                return "OK worker \(id) \(verb == "pause" ? "paused (after the transactions in flight)" : "resumed")"
            case ("hold", let target?): return hold(target)
            case ("release", let target?): return release(target)
            case ("requeue", let target?): return requeue(target)
            default: return "ERR unknown command '\(line)' (reload, stop, flush, pause N, resume N, hold JOB|POOL, release JOB|POOL, requeue JOB)"
            }
        }
    }

    private func hold(_ target: String) -> String {
        if target.count == 1, let pool = Pool(Character(target)) {
            queue.hold(pool: pool)
            return "OK pool \(pool) held: its jobs stay queued until 'release \(pool)' (a restart releases it)"
        }
        guard let name = JobName(target) else { return "ERR '\(target)' is neither a pool letter nor a job name" }
        if queue.isInHand(named: name) { return "ERR \(name) is being delivered; try again in a moment" }
        guard let job = queue.remove(named: name) else { return "ERR \(name) is not queued or deferred" }
        do {
            try spool.hold(name, from: job.place)
            return "OK \(name) moved to \(spool.holdDirectory)"
        } catch {
            queue.offer([JobOffer(name: job.name, place: job.place, size: job.size, due: nil)])
            return "ERR cannot hold \(name): \(error)"
        }
    }

    private func release(_ target: String) -> String {
        if target.count == 1, let pool = Pool(Character(target)) {
            queue.release(pool: pool)
            return "OK pool \(pool) released"
        }
        guard let name = JobName(target) else { return "ERR '\(target)' is neither a pool letter nor a job name" }
        return bringBack(name, from: .held, done: "is back in the spool")
    }

    /// `poolctl requeue JOB` while the daemon runs: only the lock holder touches bad/.
    private func requeue(_ target: String) -> String {
        guard let name = JobName(target) else { return "ERR '\(target)' is not a job name" }
        let path = spool.path(of: name, in: .bad)
        guard FileSystem.exists(path) else { return "ERR no \(name) in \(spool.badDirectory)" }
        do {
            _ = try JobReader.read(path: path)  // either form: BSMTP or a mail-merge job
        } catch {
            return "ERR \(name) is still not a valid job: \(error) (fix \(path) first)"
        }
        let answer = bringBack(name, from: .bad, done: "is back in the spool")
        if answer.hasPrefix("OK") {
            do {
                try FileSystem.unlink(path + ".why", missingOK: true)
            } catch {
                Log.error("requeue \(name): cannot remove \(path).why: \(error)")
            }
        }
        return answer
    }

    private func bringBack(_ name: JobName, from place: JobPlace, done: String) -> String {
        do {
            try spool.bringBack(name, from: place)
            let size = (try? FileSystem.status(spool.path(of: name, in: .queued)).size) ?? 0
            queue.offer([JobOffer(name: name, place: .queued, size: size, due: nil)])
            return "OK \(name) \(done)"
        } catch let error as SystemError where error.isExisting {
            return "ERR a job named \(name) is already in the spool"
        } catch {
            return "ERR cannot bring \(name) back from \(spool.directory(for: place)): \(error)"
        }
    }

    /// SIGHUP: read the configuration again. A bad one is reported and the old one kept.
    @discardableResult
    func reload() -> String { operations.withLock { _ in reloadNow() } }

    /// Workers whose line changed (every worker, when a server-wide key changed) finish
    /// their transactions in flight and are replaced; removed lines stop; new lines start at
    /// once. Nothing here waits for a worker: a changed worker's replacement starts on a
    /// thread of its own once the old one has ended, so a relay that is slow to answer
    /// delays only that worker. Jobs in hand go back to the queue, so nothing is lost.
    private func reloadNow() -> String {
        if isStopping { return "ERR stopping; not reloading" }
        notifier.reloading()
        defer { notifier.ready(status: board.snapshot(queue: queue, spool: spool, started: 0, merges: [], sites: [], shares: []).systemdStatus) }
        let old = config
        let new: SiteConfiguration
        do {
            new = try SiteConfiguration.load(path: old.file)
            if new.spoolDirectory != old.spoolDirectory {
                throw ControlError("SPOOL_DIR cannot change on reload (restart poold)")
            }
            try checkRelaySecurity(new)
            _ = try new.checkDistribute()
        } catch {
            Log.error("reload refused, keeping the configuration in force: \(error)")
            return "ERR reload refused, the old configuration stays: \(error)"
        }
        var unchangedGlobals = new
        unchangedGlobals.workerLines = old.workerLines
        unchangedGlobals.workers = old.workers
        unchangedGlobals.warnings = old.warnings
        let globalsChanged = unchangedGlobals != old
        let newSpecs = Dictionary(uniqueKeysWithValues: new.workers.map { ($0.id, $0) })
        var kept: [Worker] = []
        var leaving: [Worker] = []
        for worker in workers {
            if !globalsChanged, let spec = newSpecs[worker.spec.id], spec.settings == worker.spec.settings {
                kept.append(worker)
            } else {
                leaving.append(worker)
            }
        }
        for worker in leaving { worker.stop() }
        replaceConfiguration(new, limiter: globalsChanged ? RateLimiter(new.rateLimits) : nil)
        queue.replacePolicy(DispatchPolicy(new, draining: draining))
        board.replace(with: new.workers, keeping: Set(kept.map(\.spec.id)))
        let keptIDs = Set(kept.map(\.spec.id))
        var fresh: [Worker] = []
        for spec in new.workers where !keptIDs.contains(spec.id) {
            do {
                fresh.append(try makeWorker(spec, config: new))
            } catch {
                Log.error("reload: worker \(spec.id) cannot start: \(error)")
            }
        }
        let leavingIDs = Set(leaving.map(\.spec.id))
        replaceWorkers(serving: (kept + fresh).sorted { $0.spec.id < $1.spec.id }, retiring: leaving)
        for worker in fresh {
            // A worker taking the place of one still finishing its transaction waits for it.
            if let predecessor = leaving.first(where: { $0.spec.id == worker.spec.id }) {
                let successor = worker
                Thread {
                    Thread.current.name = "reload\(successor.spec.id)"
                    predecessor.join()
                    successor.start()
                }.start()
            } else {
                worker.start()
            }
        }
        for worker in leaving {
            Thread { [self] in
                worker.join()
                retired(worker)
            }.start()
        }
        for warning in new.warnings { Log.warning("\(new.file): \(warning)") }
        let replaced = fresh.filter { leavingIDs.contains($0.spec.id) }.count
        let summary = "reloaded \(new.file): \(kept.count) worker(s) kept, \(fresh.count - replaced) started, \(replaced) restarted, \(leaving.count - replaced) stopped"
        Log.notice(summary)
        return "OK " + summary
    }
}
