// What an operator can ask of a running daemon, through the control socket or SIGHUP:
// reload, pause/resume a worker, hold/release a job or a pool, flush the deferred queue,
// stop. Each answer is one or more lines, the last starting with OK or ERR.

import Foundation
import SpoolKit

extension Daemon {
    func command(_ line: String, peer: ControlPeer) -> String {
        let words = line.split(separator: " ").map(String.init)
        guard let verb = words.first?.lowercased() else { return "ERR empty command" }
        let argument = words.count > 1 ? words[1] : nil
        if verb != "ping" { Log.notice("control: \(peer): \(line)") }
        return operations.withLock {
            switch (verb, argument) {
            case ("ping", _): return "OK poold \(getpid())"
            case ("reload", _): return reloadLocked()
            case ("stop", _):
                DispatchQueue.global().async { self.shutdown() }
                return "OK stopping: finishing the transactions in hand"
            case ("flush", _): return "OK \(queue.flushDeferred()) deferred job(s) due now"
            case ("pause", let n?), ("resume", let n?):
                guard let id = Int(n), let worker = workers.first(where: { $0.spec.id == id }) else { return "ERR no worker \(n)" }
                if verb == "pause" { worker.pause() } else { worker.resume() }
                return "OK worker \(id) \(verb == "pause" ? "paused (after the transaction in hand)" : "resumed")"
            case ("hold", let target?): return hold(target)
            case ("release", let target?): return release(target)
            default: return "ERR unknown command '\(line)' (reload, stop, flush, pause N, resume N, hold JOB|POOL, release JOB|POOL)"
            }
        }
    }

    private func hold(_ target: String) -> String {
        if target.count == 1, let pool = Pool(Character(target)) {
            queue.hold(pool: pool)
            return "OK pool \(pool) held: its jobs stay queued until 'release \(pool)' (a restart releases it)"
        }
        guard let name = JobName(target) else { return "ERR '\(target)' is neither a pool letter nor a job name" }
        if queue.isInHand(named: name.fileName) { return "ERR \(name) is being delivered; try again in a moment" }
        guard let job = queue.remove(named: name.fileName) else { return "ERR \(name) is not queued or deferred" }
        do {
            try spool.hold(path: job.path, name: name.fileName)
            return "OK \(name) moved to \(spool.holdDirectory)"
        } catch {
            queue.offer([(job.name, job.path, job.size, nil)])
            return "ERR cannot hold \(name): \(error)"
        }
    }

    private func release(_ target: String) -> String {
        if target.count == 1, let pool = Pool(Character(target)) {
            queue.release(pool: pool)
            return "OK pool \(pool) released"
        }
        guard let name = JobName(target) else { return "ERR '\(target)' is neither a pool letter nor a job name" }
        do {
            let path = try spool.bringBack(from: spool.holdDirectory, name: name.fileName)
            let size = (try? FileSystem.status(path).size) ?? 0
            queue.offer([(name, path, size, nil)])
            return "OK \(name) is back in the spool"
        } catch let error as SystemError where error.isExisting {
            return "ERR a job named \(name) is already in the spool"
        } catch {
            return "ERR cannot release \(name): \(error)"
        }
    }

    /// SIGHUP: read the configuration again. A bad one is reported and the old one kept.
    /// Workers whose line changed finish the transaction in hand and restart, new lines
    /// start, removed lines stop; a change to a server-wide key restarts every worker.
    /// Jobs in hand go back to the queue, so nothing in flight is lost.
    @discardableResult
    func reload() -> String { operations.withLock { reloadLocked() } }

    private func reloadLocked() -> String {
        if isStopping { return "ERR stopping; not reloading" }
        notifier.reloading()
        defer { notifier.ready(status: board.snapshot(queue: queue, spool: spool, started: 0).systemdStatus) }
        let new: SiteConfiguration
        do {
            new = try SiteConfiguration.load(path: config.file)
            if new.spoolDirectory != config.spoolDirectory {
                throw ControlError("SPOOL_DIR cannot change on reload (restart poold)")
            }
            try checkRelaySecurity(new)
        } catch {
            Log.error("reload refused, keeping the configuration in force: \(error)")
            return "ERR reload refused, the old configuration stays: \(error)"
        }
        var unchangedGlobals = new
        unchangedGlobals.workerLines = config.workerLines
        unchangedGlobals.workers = config.workers
        unchangedGlobals.warnings = config.warnings
        let globalsChanged = unchangedGlobals != config
        let newSpecs = Dictionary(uniqueKeysWithValues: new.workers.map { ($0.id, $0) })
        var kept: [Worker] = []
        var stopped: [Worker] = []
        for worker in workers {
            if !globalsChanged, let spec = newSpecs[worker.spec.id], spec.settings == worker.spec.settings {
                kept.append(worker)
            } else {
                stopped.append(worker)
            }
        }
        for worker in stopped { worker.stop() }
        for worker in stopped { worker.join() }
        config = new
        if globalsChanged { limiter = RateLimiter(new.rateLimits) }
        queue.replacePolicy(DispatchPolicy(new, draining: draining))
        board.replace(with: new.workers, keeping: Set(kept.map(\.spec.id)))
        let keptIDs = Set(kept.map(\.spec.id))
        var started: [Worker] = []
        for spec in new.workers where !keptIDs.contains(spec.id) {
            do {
                started.append(try makeWorker(spec, config: new))
            } catch {
                Log.error("reload: worker \(spec.id) cannot start: \(error)")
            }
        }
        for worker in started { worker.start() }
        workers = (kept + started).sorted { $0.spec.id < $1.spec.id }
        for warning in new.warnings { Log.warning("\(new.file): \(warning)") }
        let summary = "reloaded \(new.file): \(kept.count) worker(s) kept, \(started.count) started, \(stopped.count) stopped"
        Log.notice(summary)
        return "OK " + summary
    }
}
