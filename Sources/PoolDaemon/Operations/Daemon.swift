// The daemon composed: configuration → spool and its lock → finished jobs a crash left
// removed (the finished log) → index of jobs (first scan, then the watcher; the jobs the
// scan found read ahead by the prefetcher) → workers, with the reaper that removes the
// jobs they finish → status. `run()` returns the exit status.
// In drain mode there is no watcher: every job due at start is tried once, and the run
// ends when no due job is left and no worker holds one.
// Shared state: the configuration in force and the worker list each live behind a
// `Mutex` (a reload replaces them; the status loop and the control socket read them);
// `operations` keeps reloads and control commands from overlapping, and is never held
// while waiting for a worker.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SMTPClient
import SpoolKit
import Synchronization

final class Daemon: Sendable {
    private let configuration: Locked<SiteConfiguration>
    /// The configuration in force (a reload replaces it).
    var config: SiteConfiguration { configuration.withLock { $0 } }
    let spool: Spool
    let draining: Bool
    let queue: JobQueue
    let board: StatusBoard
    private let roster = Locked(Roster())
    /// Held by reloads and control commands, so they never overlap.
    let operations = Locked(())
    private let control = Locked<ControlSocket?>(nil)
    private let limiterInForce: Locked<RateLimiter>
    /// Journals on disk, listed once at start (`scanSpool`).
    let journals = JournalRegistry([])
    /// The mail-merge passes running now.
    let merges = MergeRuns()
    /// The resolver and sites of MX lines (nil when no line says MX).
    let direct: DirectDelivery?
    /// The shares of distributed jobs sent in this run.
    let shares = ShareBook()
    /// DIST_SECRET's key, read at start (nil without DIST_SECRET).
    private let shareKey = Locked<ShareKey?>(nil)
    /// Removes finished jobs, off the workers' path.
    let reaper: Reaper
    /// Reads the jobs found at start into the page cache ahead of the workers.
    let prefetcher: Prefetcher
    private let watcher = Locked<SpoolWatcher?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let started: Double
    /// systemd's NOTIFY_SOCKET (a no-op without it).
    let notifier = SystemdNotifier()
    private let lockDescriptor = Locked<FileDescriptor?>(nil)

    /// The time the workers see (tests move it to open and close windows, and to make
    /// deferred jobs due).
    let clock: WallClock
    let calendar: Calendar

    /// The workers: those in service, and those stopping after a reload.
    private struct Roster {
        var serving: [Worker] = []
        var retiring: [Worker] = []
    }

    init(config: SiteConfiguration, draining: Bool, clock: @escaping @Sendable () -> Date = { Date() }, calendar: Calendar = .current) {
        configuration = Locked(config)
        spool = Spool(root: config.spoolDirectory)
        self.draining = draining
        self.clock = WallClock(clock)
        self.calendar = calendar
        queue = JobQueue(policy: DispatchPolicy(config, draining: draining), draining: draining, clock: self.clock)
        board = StatusBoard(config.workers)
        limiterInForce = Locked(RateLimiter(config.rateLimits))
        started = self.clock.seconds
        direct = Daemon.directDelivery(config, clock: self.clock)
        reaper = Reaper(spool: spool, queue: queue)
        prefetcher = Prefetcher(spool: spool, queue: queue)
    }

    /// DIST_FORWARD's splitter, when this instance forwards (and the key was read at start).
    private func distribution(_ config: SiteConfiguration, heloName: String) -> Distribution? {
        guard config.distribute.isForwarding, let key = shareKey.withLock({ $0 }) else { return nil }
        return Distribution(settings: config.distribute, key: key, heloName: heloName, spool: spool, book: shares) { [queue, spool] name in
            let size = (try? FileSystem.status(spool.path(of: name, in: .queued)).size) ?? 0
            queue.offer([JobOffer(name: name, place: .queued, size: size, due: nil)])
        }
    }

    /// What MX lines share, when any line says MX: the resolver (DNS_SERVER, else the
    /// system's) with its cache, and the sites.
    static func directDelivery(_ config: SiteConfiguration, clock: WallClock) -> DirectDelivery? {
        guard config.workerLines.contains(where: \.isDirect) else { return nil }
        let server = config.dnsServer.flatMap { DNSServerAddress($0) }
        return DirectDelivery(resolver: MXResolver(settings: ResolverSettings(server: server)),
                              sites: SiteBoard(maxConnections: config.mxSiteConnections, clock: clock),
                              port: config.mxPort, maxMessages: config.mxSiteMessages)
    }

    var workers: [Worker] { roster.withLock { $0.serving } }
    var limiter: RateLimiter { limiterInForce.withLock { $0 } }

    enum StartError: Error, CustomStringConvertible {
        case alreadyRunning(pid: Int32?, spool: String)
        case refused(String)
        /// The configuration parses but cannot be used (a key or secret file, TLS files).
        case unusableConfiguration(String)
        var description: String {
            switch self {
            case .alreadyRunning(let pid, let spool):
                return "another poold\(pid.map { " (pid \($0))" } ?? "") already serves \(spool)"
            case .refused(let why), .unusableConfiguration(let why): return why
            }
        }
    }

    /// Takes the spool, scans it and starts the workers.
    func start() throws {
        let config = self.config
        do {
            try checkRelaySecurity(config)
        } catch {
            throw StartError.unusableConfiguration("\(error)")  // it names the file and line
        }
        do {
            let key = try config.checkDistribute()
            shareKey.withLock { $0 = key }
        } catch {
            throw StartError.unusableConfiguration("\(config.distribute.line.map { "\(config.file):\($0): " } ?? "\(config.file): ")\(error)")
        }
        do {
            try spool.prepare()
        } catch {
            throw StartError.refused("cannot prepare the spool \(spool.root): \(error)")
        }
        guard let lock = try spool.lock() else {
            throw StartError.alreadyRunning(pid: spool.daemonPID(), spool: spool.root)
        }
        lockDescriptor.withLock { $0 = lock }
        for warning in config.warnings { Log.warning("\(config.file): \(warning)") }
        if config.strictRoundRobin {
            Log.notice("strict round-robin is active: a job with spool id k goes to the worker w with k ≡ w (mod N) of its pool; an unavailable worker's jobs pass on after \(config.strictRoundRobinWait) s")
        }
        AtomicFile.sweep(directory: spool.root, olderThan: Limits.temporaryFileAge, now: clock.seconds)
        do {
            // Jobs finished before a crash whose files were not removed yet: never sent again.
            let removed = try FinishedLog.recover(spool)
            if removed > 0 { Log.notice("removed \(removed) job(s) the finished log names (finished before the last stop)") }
        } catch {
            throw StartError.refused("cannot read the finished log in \(spool.stateDirectory): \(error)")
        }
        reaper.start()
        let found = try scanSpool()
        prefetcher.start(found.due)
        for pool in config.unservedPools(among: found.pools.members) {
            Log.warning("pool \(pool) holds jobs but no worker serves it: they wait until a worker line says POOL=\(pool) (or POOL=*)")
        }
        Log.notice("poold \(draining ? "draining" : "serving") \(spool.root): \(found.queued) job(s) queued, \(found.deferred) deferred; \(config.workers.count) worker(s)")
        if !draining {
            let watcher = try SpoolWatcher(spool: spool, rescanInterval: config.rescanInterval)
            self.watcher.withLock { $0 = watcher }
            let thread = Thread { [self] in
                Thread.current.name = "watcher"
                watcher.run(onNames: { self.offer($0) }, onRescan: { listing in
                    switch listing {
                    case .success(let names): self.offer(names)
                    case .failure(let error): Log.error("cannot list the spool \(self.spool.root): \(error)")
                    }
                })
            }
            thread.start()
        }
        for limit in config.rateLimits {
            Log.info("rate limit: \(Int(limit.bitsPerSecond)) bit/s for \(limit.pools.map { "pools \($0)" } ?? "the whole server")")
        }
        let workers = try config.workers.map { try makeWorker($0, config: config) }
        roster.withLock { $0.serving = workers }
        if !draining { try startControlSocket(config) }
        try dropPrivilegesIfAsked(config)
        for worker in workers { worker.start() }
        let snapshot = writeStatus()
        writeMetrics(snapshot, config: config)
        notifier.ready(status: snapshot.systemdStatus)
    }

    /// RUN_AS: everything root was needed for is open by now (the lock, inotify, the
    /// control socket); hand the spool's daemon places over and become that user.
    private func dropPrivilegesIfAsked(_ config: SiteConfiguration) throws {
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
            let extra = control.withLock { $0.map { [$0.path] } } ?? []
            try Privileges.handOver(spool, extra: extra, to: account)
            try Privileges.drop(to: account, spool: spool)
            Log.notice("running as \(user) (uid \(account.uid), gid \(account.gid))")
        } catch {
            throw StartError.refused("\(error)")
        }
    }

    /// A worker for `spec` under `config` (at start, and for lines a reload changed).
    func makeWorker(_ spec: WorkerSpec, config: SiteConfiguration) throws -> Worker {
        let baseSettings = SessionSettings(heloName: config.heloName ?? Daemon.hostName(), timeouts: config.timeouts.smtp)
        let bounces = BounceReport(spool: spool, reportingMTA: baseSettings.heloName) { [queue] name, size in
            queue.offer([JobOffer(name: name, place: .queued, size: size, due: nil)])
        }
        let settings = DeliverySettings(maxRecipients: config.maxBSMTP, sort: config.sortRecipients,
                                        retrySchedule: config.retrySchedule, queueLifetime: config.queueLifetime)
        let context = DeliveryContext(spool: spool, settings: settings, journals: journals, limiter: limiter,
                                      bounces: bounces, clock: clock, merges: merges, mergeSlice: config.mergeSlice,
                                      heloName: baseSettings.heloName, direct: direct,
                                      distribution: distribution(config, heloName: baseSettings.heloName), reaper: reaper)
        let description = Daemon.describe(spec.settings, roundRobin: config.roundRobinPlaces(worker: spec.id))
        let log = config.logDirectory.map { WorkerLog(directory: $0, worker: spec.id, header: "worker \(spec.id): \(description)") }
        var workerSettings: SessionSettings
        do {
            workerSettings = try sessionSettings(for: spec.settings, base: baseSettings)
        } catch {
            throw StartError.refused("\(error)")
        }
        workerSettings.timeouts.tlsHandshake = .seconds(config.timeouts.tlsHandshake)
        workerSettings.idleProbeAfter = .seconds(config.timeouts.idleProbe)
        Log.info("worker \(spec.id): \(description)")
        return Worker(spec: spec, queue: queue, board: board, context: context, sessionSettings: workerSettings,
                      draining: draining, calendar: calendar, log: log,
                      daemonStopping: { [unowned self] in self.stopping.load(ordering: .relaxed) })
    }

    private func startControlSocket(_ config: SiteConfiguration) throws {
        let path = config.controlSocket ?? spool.root + "/.poold.sock"
        let socket: ControlSocket
        do {
            socket = try ControlSocket(path: path)
        } catch {
            throw StartError.refused("control socket: \(error)")
        }
        control.withLock { $0 = socket }
        let thread = Thread { [self] in
            Thread.current.name = "control"
            socket.run { line, peer in self.command(line, peer: peer) }
        }
        thread.start()
    }

    /// Runs until the workers end (drain) or `shutdown()`; returns the exit status.
    func wait() -> Int32 {
        let statusThread = Thread { [self] in
            Thread.current.name = "status"
            var tick = 0
            while !stopping.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: Double(Limits.statusInterval.components.seconds))
                if stopping.load(ordering: .relaxed) { break }  // the last status is written by `wait`
                let snapshot = writeStatus()
                tick += 1
                if tick % Limits.metricsEvery == 0 { writeMetrics(snapshot, config: config) }
                notifier.status(snapshot.systemdStatus)
                notifier.pingWatchdog()
            }
        }
        statusThread.start()
        // A reload may replace workers while we wait: join until none is left running.
        while true {
            let current = roster.withLock { $0.serving + $0.retiring }
            for worker in current { worker.join() }
            let now = roster.withLock { $0.serving + $0.retiring }
            if now.map(ObjectIdentifier.init) == current.map(ObjectIdentifier.init) { break }
        }
        stopping.store(true, ordering: .relaxed)
        control.withLock { $0?.stop() }
        watcher.withLock { $0?.stop() }
        queue.stop()
        prefetcher.stop()
        reaper.drain()
        reaper.stop()
        try? FileSystem.unlink(spool.statusPath, missingOK: true)
        var last = board.snapshot(queue: queue, spool: spool, started: started, merges: merges.progress(now: clock.seconds), sites: direct?.sites.snapshot() ?? [],
                                      shares: shares.snapshot())
        last.daemon = "stopped"
        writeMetrics(last, config: config)
        let totals = board.totals
        Log.notice("poold stopped: \(totals.delivered) delivered, \(totals.deferred) deferred, \(totals.failed) failed")
        lockDescriptor.withLock { $0?.close() }
        return 0
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// SIGTERM/SIGINT: finish the transactions in hand, then stop.
    func shutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        Log.notice("stopping: finishing the transactions in hand")
        notifier.stopping()
        for worker in roster.withLock({ $0.serving + $0.retiring }) { worker.stop() }
        queue.stop()
        watcher.withLock { $0?.stop() }
    }

    // MARK: - the roster, for reloads

    /// Replaces the worker list: `serving` goes into service, `retiring` finish their
    /// transactions in flight and leave.
    func replaceWorkers(serving: [Worker], retiring: [Worker]) {
        roster.withLock {
            $0.serving = serving
            $0.retiring += retiring
        }
    }

    /// A retired worker has ended: it leaves the roster.
    func retired(_ worker: Worker) {
        roster.withLock { $0.retiring.removeAll { $0 === worker } }
    }

    func replaceConfiguration(_ new: SiteConfiguration, limiter: RateLimiter?) {
        configuration.withLock { $0 = new }
        if let limiter { limiterInForce.withLock { $0 = limiter } }
    }

    @discardableResult
    private func writeStatus() -> StatusSnapshot {
        let snapshot = board.snapshot(queue: queue, spool: spool, started: started, merges: merges.progress(now: clock.seconds), sites: direct?.sites.snapshot() ?? [],
                                      shares: shares.snapshot())
        do {
            try AtomicFile.write(directory: spool.stateDirectory, name: "status.json", bytes: snapshot.encoded(), mode: 0o644, sync: false)
        } catch {
            Log.debug("cannot write \(spool.statusPath): \(error)")
        }
        return snapshot
    }

    private func writeMetrics(_ snapshot: StatusSnapshot, config: SiteConfiguration) {
        if let path = config.metricsFile {
            MetricsFile.publish(snapshot, extra: MetricsFile.rateLimitFamily(config.rateLimits).map { [$0] } ?? [], to: path)
        }
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
        t.connect = .seconds(connect)
        t.greeting = .seconds(greeting)
        t.command = .seconds(command)
        t.dataInit = .seconds(dataInit)
        t.dataBlock = .seconds(dataBlock)
        t.dataDone = .seconds(dataDone)
        t.tlsHandshake = .seconds(tlsHandshake)
        return t
    }
}
