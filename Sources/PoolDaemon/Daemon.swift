// The daemon composed: configuration → spool and its lock → index of jobs (first scan,
// then the watcher) → workers → status. `run()` returns the exit status.
// In drain mode there is no watcher: every job due at start is tried once, and the run
// ends when no due job is left and no worker holds one.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SMTPClient
import SpoolKit
import Synchronization

final class Daemon: @unchecked Sendable {
    /// The configuration in force (replaced by a reload, under `operations`).
    var config: SiteConfiguration
    let spool: Spool
    let draining: Bool
    let queue: JobQueue
    let board: StatusBoard
    var workers: [Worker] = []
    /// Held by reloads and control commands, so they never overlap.
    let operations = NSLock()
    private var control: ControlSocket?
    var limiter = RateLimiter([])
    /// Journals on disk, listed once at start (`scanSpool`).
    let journals = JournalRegistry([])
    private var watcher: SpoolWatcher?
    private let stopping = Atomic<Bool>(false)
    private let started = Date().timeIntervalSince1970
    /// systemd's NOTIFY_SOCKET (a no-op without it).
    let notifier = SystemdNotifier()
    /// METRICS_FILE is written every this many status updates (one a second).
    static let metricsEvery = 5

    /// The time the workers see (tests move it to open and close windows).
    let clock: @Sendable () -> Date
    let calendar: Calendar

    init(config: SiteConfiguration, draining: Bool, clock: @escaping @Sendable () -> Date = { Date() }, calendar: Calendar = .current) {
        self.config = config
        self.spool = Spool(root: config.spoolDirectory)
        self.draining = draining
        self.clock = clock
        self.calendar = calendar
        self.queue = JobQueue(policy: DispatchPolicy(config, draining: draining), draining: draining)
        self.board = StatusBoard(config.workers)
    }

    enum StartError: Error, CustomStringConvertible {
        case alreadyRunning(pid: Int32?, spool: String)
        case refused(String)
        var description: String {
            switch self {
            case .alreadyRunning(let pid, let spool):
                return "another poold\(pid.map { " (pid \($0))" } ?? "") already serves \(spool)"
            case .refused(let why): return why
            }
        }
    }

    private var lockDescriptor: FileDescriptor?

    /// Takes the spool, scans it and starts the workers.
    func start() throws {
        do {
            try checkRelaySecurity(config)
        } catch {
            throw StartError.refused("\(error)")
        }
        do {
            try spool.prepare()
        } catch {
            throw StartError.refused("cannot prepare the spool \(spool.root): \(error)")
        }
        guard let lock = try spool.lock() else {
            throw StartError.alreadyRunning(pid: spool.daemonPID(), spool: spool.root)
        }
        lockDescriptor = lock
        for warning in config.warnings { Log.warning("\(config.file): \(warning)") }
        if config.strictRoundRobin {
            Log.notice("strict round-robin is active: a job with spool id k goes to the worker w with k ≡ w (mod N) of its pool; an unavailable worker's jobs pass on after \(config.strictRoundRobinWait) s")
        }
        AtomicFile.sweep(directory: spool.root, olderThan: 3600, now: Date().timeIntervalSince1970)
        let found = try scanSpool()
        for pool in config.unservedPools(in: spool) {
            Log.warning("pool \(pool) holds jobs but no worker serves it: they wait until a worker line says POOL=\(pool) (or POOL=*)")
        }
        Log.notice("poold \(draining ? "draining" : "serving") \(spool.root): \(found.queued) job(s) queued, \(found.deferred) deferred; \(config.workers.count) worker(s)")
        if !draining {
            let watcher = try SpoolWatcher(spool: spool, rescanInterval: config.rescanInterval)
            self.watcher = watcher
            let thread = Thread { [self] in
                Thread.current.name = "watcher"
                watcher.run(onNames: { self.offer($0) }, onRescan: { self.offer($0) })
            }
            thread.start()
        }
        limiter = RateLimiter(config.rateLimits)
        for limit in config.rateLimits {
            Log.info("rate limit: \(Int(limit.bitsPerSecond)) bit/s for \(limit.pools.map { "pools \($0)" } ?? "the whole server")")
        }
        workers = try config.workers.map { try makeWorker($0, config: config) }
        if !draining { try startControlSocket() }
        try dropPrivilegesIfAsked()
        for worker in workers { worker.start() }
        let snapshot = writeStatus()
        writeMetrics(snapshot)
        notifier.ready(status: snapshot.systemdStatus)
    }

    /// RUN_AS: everything root was needed for is open by now (the lock, inotify, the
    /// control socket); hand the spool's daemon places over and become that user.
    private func dropPrivilegesIfAsked() throws {
        guard geteuid() == 0 else {
            if let user = config.runAs { Log.info("RUN_AS=\(user) ignored: not started as root") }
            return
        }
        guard let user = config.runAs else {
            Log.warning("running as root: set RUN_AS=user in \(config.file) so that poold drops its privileges")
            return
        }
        do {
            let account = try Privileges.account(user)
            try Privileges.handOver(spool, extra: control.map { [$0.path] } ?? [], to: account)
            try Privileges.drop(to: account, spool: spool)
            Log.notice("running as \(user) (uid \(account.uid), gid \(account.gid))")
        } catch {
            throw StartError.refused("\(error)")
        }
    }

    /// A worker for `spec` under `config` (at start, and for lines a reload changed).
    func makeWorker(_ spec: WorkerSpec, config: SiteConfiguration) throws -> Worker {
        let baseSettings = SessionSettings(heloName: config.heloName ?? Daemon.hostName(), timeouts: config.timeouts.smtp)
        let bounces = BounceReport(spool: spool, reportingMTA: baseSettings.heloName) { [queue] name, path, size in
            queue.offer([(name, path, size, nil)])
        }
        let deliverySettings = DeliverySettings(maxRecipients: config.maxBSMTP, sort: config.sortRecipients,
                                                retrySchedule: config.retrySchedule, queueLifetime: config.queueLifetime)
        var delivery = JobDelivery(spool: spool, settings: deliverySettings, failures: bounces,
                                   workerID: spec.id, limiter: limiter, journals: journals, clock: { Date().timeIntervalSince1970 })
        let description = Daemon.describe(spec.settings, roundRobin: config.roundRobinPlaces(worker: spec.id))
        if let directory = config.logDirectory {
            delivery.log = WorkerLog(directory: directory, worker: spec.id, header: "worker \(spec.id): \(description)")
        }
        let workerSettings: SessionSettings
        do {
            workerSettings = try sessionSettings(for: spec.settings, base: baseSettings)
        } catch {
            throw StartError.refused("\(error)")
        }
        Log.info("worker \(spec.id): \(description)")
        return Worker(spec: spec, queue: queue, board: board, delivery: delivery,
                      sessionSettings: workerSettings, draining: draining, clock: clock, calendar: calendar,
                      daemonStopping: { [unowned self] in self.stopping.load(ordering: .relaxed) })
    }

    private func startControlSocket() throws {
        let path = config.controlSocket ?? spool.root + "/.poold.sock"
        let socket: ControlSocket
        do {
            socket = try ControlSocket(path: path)
        } catch {
            throw StartError.refused("control socket: \(error)")
        }
        control = socket
        let thread = Thread { [self] in
            Thread.current.name = "control"
            socket.run { line, peer in self.command(line, peer: peer) }
        }
        thread.start()
    }

    /// Offers jobs seen in the spool directory to the index (new ones only).
    func offer(_ names: [JobName]) {
        var jobs: [(name: JobName, path: String, size: Int64, due: Double?)] = []
        for name in names {
            let path = spool.root + "/" + name.fileName
            if queue.isKnown(path) { continue }
            guard let st = try? FileSystem.status(path), st.isRegular else { continue }
            jobs.append((name, path, st.size, nil))
        }
        queue.offer(jobs)
    }

    /// The first look at the spool: queued jobs oldest first, deferred jobs with the time
    /// their journal gives, and journals whose job is gone removed.
    private func scanSpool() throws -> (queued: Int, deferred: Int) {
        let existing = spool.journals()
        func journal(_ name: JobName, _ st: FileStatus) -> Journal? {
            let path = spool.journalPath(for: name.fileName, inode: st.inode)
            return existing.contains(path) ? try? Journal(path: path) : nil
        }
        var live: Set<String> = []
        var queued: [(name: JobName, path: String, st: FileStatus)] = []
        for name in try spool.jobs() {
            let path = spool.root + "/" + name.fileName
            guard let st = try? FileSystem.status(path), st.isRegular else { continue }
            queued.append((name, path, st))
        }
        queued.sort { ($0.st.modified, $0.name) < ($1.st.modified, $1.name) }
        var offers: [(name: JobName, path: String, size: Int64, due: Double?)] = []
        var deferredCount = 0
        for job in queued {
            live.insert("\(job.name.fileName).\(job.st.inode)")
            if let next = journal(job.name, job.st)?.nextAttempt, next > Date().timeIntervalSince1970 {
                // Deferred, but the crash came before the move to deferred/.
                let path = (try? spool.moveToDeferred(path: job.path, name: job.name.fileName)) ?? job.path
                offers.append((job.name, path, job.st.size, draining ? .infinity : next))
                deferredCount += 1
            } else {
                offers.append((job.name, job.path, job.st.size, nil))
            }
        }
        for name in (try? spool.jobs(in: spool.deferredDirectory)) ?? [] {
            let path = spool.deferredDirectory + "/" + name.fileName
            guard let st = try? FileSystem.status(path), st.isRegular else { continue }
            live.insert("\(name.fileName).\(st.inode)")
            let due = journal(name, st)?.nextAttempt ?? 0
            offers.append((name, path, st.size, due))
            deferredCount += 1
        }
        let orphans = Set(spool.orphans(among: existing, live: live))
        for orphan in orphans { try? FileSystem.unlink(orphan, missingOK: true) }
        for path in existing.subtracting(orphans) { journals.insert(path) }
        // In a drain, jobs not yet due are left alone.
        if draining {
            let now = Date().timeIntervalSince1970
            offers.removeAll { ($0.due ?? 0) > now }
        }
        queue.offer(offers)
        return (queued.count, deferredCount)
    }

    /// Runs until the workers end (drain) or `shutdown()`; returns the exit status.
    func wait() -> Int32 {
        let statusThread = Thread { [self] in
            Thread.current.name = "status"
            var tick = 0
            while !stopping.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: 1)
                let snapshot = writeStatus()
                tick += 1
                if tick % Daemon.metricsEvery == 0 { writeMetrics(snapshot) }
                notifier.status(snapshot.systemdStatus)
                notifier.pingWatchdog()
            }
        }
        statusThread.start()
        // A reload may replace workers while we wait: join until none is left running.
        while true {
            let current = operations.withLock { workers }
            for worker in current { worker.join() }
            if operations.withLock({ workers.map(ObjectIdentifier.init) }) == current.map(ObjectIdentifier.init) { break }
        }
        stopping.store(true, ordering: .relaxed)
        control?.stop()
        watcher?.stop()
        queue.stop()
        try? FileSystem.unlink(spool.statusPath, missingOK: true)
        var last = board.snapshot(queue: queue, spool: spool, started: started)
        last.daemon = "stopped"
        writeMetrics(last)
        let totals = board.all.reduce(into: (0, 0, 0)) { $0.0 += $1.delivered; $0.1 += $1.deferred; $0.2 += $1.failed }
        Log.notice("poold stopped: \(totals.0) delivered, \(totals.1) deferred, \(totals.2) failed")
        lockDescriptor?.close()
        return 0
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// SIGTERM/SIGINT: finish the transactions in hand, then stop.
    func shutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        Log.notice("stopping: finishing the transactions in hand")
        notifier.stopping()
        for worker in operations.withLock({ workers }) { worker.stop() }
        queue.stop()
        watcher?.stop()
    }

    @discardableResult
    private func writeStatus() -> StatusSnapshot {
        let snapshot = board.snapshot(queue: queue, spool: spool, started: started)
        try? AtomicFile.write(directory: spool.stateDirectory, name: "status.json", bytes: snapshot.encoded(), mode: 0o644, sync: false)
        return snapshot
    }

    private func writeMetrics(_ snapshot: StatusSnapshot) {
        if let path = config.metricsFile { MetricsFile.publish(snapshot, to: path) }
    }

    static func describe(_ line: WorkerLine, roundRobin: String?) -> String {
        var parts = ["relay \(line.relay)", "pools \(line.pools)"]
        if let f = line.failover { parts.append("failover \(f)") }
        if !line.windows.isEmpty { parts.append("windows " + line.windows.map(\.description).joined(separator: ",")) }
        if let m = line.maxSizeKB { parts.append("MAXSIZE \(m) kB") }
        if let e = roundRobin { parts.append("round-robin place \(e)") }
        return parts.joined(separator: ", ")
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}

extension SMTPTimeoutSettings {
    var smtp: SMTPTimeouts {
        var t = SMTPTimeouts()
        t.connect = connect
        t.greeting = greeting
        t.command = command
        t.dataInit = dataInit
        t.dataBlock = dataBlock
        t.dataDone = dataDone
        return t
    }
}
