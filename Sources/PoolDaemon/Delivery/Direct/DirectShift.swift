// The thread of a worker on an MX line (`SMTP_FORWARD_n=[x*]MX`): it takes due jobs from
// the queue and files their recipients into site bins (resolving each domain's mail
// exchangers through the shared, TTL-bound cache), then leases the site that has waited
// longest and delivers from its bin: every address of every exchanger in order until one
// answers (a 421 greeting or a refused connection moves to the next), transactions
// pipelined as with a relay, the connection kept while the bin has mail and closed after
// MX_SITE_MESSAGES messages. A null MX or a domain that does not exist fails its recipients
// (DSN 5.1.10, 5.1.2); a temporary DNS failure defers them.

import Foundation
import SMTPClient
import SpoolKit

/// What the MX lines share: the resolver and its cache, the sites and their bins.
struct DirectDelivery: Sendable {
    let resolver: MXResolver
    let sites: SiteBoard
    /// MX_PORT.
    let port: UInt16
    /// MX_SITE_MESSAGES.
    let maxMessages: Int
}

struct DirectShift {
    let worker: Worker
    let direct: DirectDelivery
    let executor: SpoolExecutor
    var id: Int { worker.spec.id }

    init(worker: Worker, direct: DirectDelivery) {
        self.worker = worker
        self.direct = direct
        executor = worker.executor
    }

    mutating func run() {
        while !worker.isStopping {
            if worker.isPaused || !worker.isOpenNow {
                worker.queue.setAvailable(id, false)
                worker.board.update(id) { $0.state = worker.isPaused ? .paused : .closed; $0.job = nil }
                if worker.draining { break }
                Thread.sleep(forTimeInterval: 0.25)
                continue
            }
            worker.queue.setAvailable(id, true)
            var taken = 0
            while taken < Limits.directIntake, let job = worker.queue.tryTake(worker: id, serving: worker.spec.settings.pools) {
                intake(job)
                taken += 1
            }
            if let lease = direct.sites.lease() {
                serve(lease)
                continue
            }
            worker.board.update(id) { if $0.state != .idle { $0.state = .idle; $0.job = nil } }
            let sites = direct.sites
            let keepWaiting = { [worker] in !worker.isStopping && !worker.isPaused && worker.isOpenNow && !sites.hasLeasable }
            switch worker.queue.take(worker: id, serving: worker.spec.settings.pools, keepWaiting: keepWaiting) {
            case .job(let job): intake(job)
            case .finished: return finish()
            case .recheck: continue
            }
        }
        finish()
    }

    private func finish() {
        worker.queue.setAvailable(id, false)
        worker.board.update(id) { $0.state = .stopped; $0.job = nil }
    }

    // MARK: filling the bins

    private enum Destination {
        case site(SiteKey, [ExchangerAddress])
        case decided(RecipientOutcome)
    }

    /// A job from the queue: its recipients filed by site, or decided when DNS decides them.
    private func intake(_ job: QueuedJob) {
        let now = worker.context.clock.seconds
        let opening = JobAttempt.open(job, spool: worker.context.spool, journals: worker.context.journals,
                                      settings: worker.context.settings, now: now)
        if case .ready(let plain) = opening,
           worker.context.distributes(job, .bsmtp(plain.content, bytes: plain.bytes), journalPath: plain.journalPath, now: now) {
            worker.settle(job, .finished, AttemptCounters())
            return
        }
        guard case .ready(var attempt) = opening else {
            if case .merge = opening {
                Log.warning("job=\(job.name): a mail-merge job goes through relay lines; an MX line does not send it (it waits for the retry schedule)")
                worker.settle(job, .deferred(job.place, due: now + worker.context.settings.retrySchedule[0]), AttemptCounters())
            } else {
                worker.settle(job, executor.apply(opening, job: job), AttemptCounters())
            }
            return
        }
        worker.board.update(id) { $0.state = .busy; $0.job = job.name.fileName; $0.since = now }
        // Group 0 gathers the recipients DNS decided (one DSN for all of a transaction's);
        // each site is a group of its own.
        var sites: [(key: SiteKey, addresses: [ExchangerAddress])] = []
        var groupOfSite: [SiteKey: Int] = [:]
        var groupOfDomain: [String: Int] = [:]
        var decided: [String: RecipientOutcome] = [:]
        for tx in attempt.content.transactions {
            for (r, recipient) in tx.recipients.enumerated() where attempt.journal?.decided[RecipientKey(tx.index, r)] == nil {
                let domain = recipient.domain
                guard groupOfDomain[domain] == nil else { continue }
                switch resolve(domain) {
                case .decided(let outcome):
                    decided[domain] = outcome
                    groupOfDomain[domain] = 0
                case .site(let key, let addresses):
                    if let known = groupOfSite[key] {
                        groupOfDomain[domain] = known
                    } else {
                        sites.append((key, addresses))
                        groupOfSite[key] = sites.count
                        groupOfDomain[domain] = sites.count
                    }
                }
            }
        }
        let content = attempt.content
        let group = { (t: Int, r: Int) -> Int in groupOfDomain[content.transactions[t].recipients[r].domain] ?? 0 }
        attempt.regroup(group)
        var siteOfPart: [Int: SiteKey] = [:]
        for p in attempt.parts.indices where attempt.group(of: p, group) > 0 {
            siteOfPart[p] = sites[attempt.group(of: p, group) - 1].key
        }
        let shared = DirectJob(attempt, sites: siteOfPart)
        var ended: [Settlement] = []
        for p in attempt.parts.indices {
            let g = attempt.group(of: p, group)
            if g == 0 {
                let outcomes = { (t: Int, r: Int) -> RecipientOutcome in
                    decided[content.transactions[t].recipients[r].domain] ?? RecipientOutcome(.deferred, origin: .local("no DNS answer kept"))
                }
                ended += shared.record(nil, part: p, decidedAs: outcomes, worker: id, relay: "dns", executor: executor).ended
                continue
            }
            let (key, addresses) = sites[g - 1]
            if direct.sites.isResting(key) {
                let outcome = RecipientOutcome(.deferred, origin: .connection(.notConnected("site \(key) rests: its every address failed a moment ago")))
                ended += shared.record(nil, part: p, decidedAs: { _, _ in outcome }, worker: id, relay: key.description, executor: executor).ended
            } else {
                direct.sites.add(shared, part: p, recipients: attempt.parts[p].members.count, site: key, addresses: addresses)
            }
        }
        ended += shared.concludeIfSettled(executor: executor)
        for settlement in ended { worker.settle(settlement) }
    }

    /// Where mail for `domain` goes, or what DNS decided for its recipients.
    private func resolve(_ domain: String) -> Destination {
        guard !domain.isEmpty else {
            return .decided(RecipientOutcome(.failed, origin: .local("550 5.1.2 no domain to deliver to"), status: .noSuchDomain))
        }
        do {
            let resolution = try direct.resolver.resolve(domain)
            return .site(resolution.site, resolution.addresses)
        } catch {
            let reply = error.reply
            let status = reply.enhancedStatus.flatMap { EnhancedStatus($0) } ?? (error.isPermanent ? .noSuchDomain : .transientUnknown)
            return .decided(RecipientOutcome(error.isPermanent ? .failed : .deferred, origin: .local(reply.description), status: status))
        }
    }

    // MARK: serving a site

    /// One connection to a leased site: the first address that answers, then the bin's parts.
    private mutating func serve(_ lease: SiteLease) {
        var failures: [String] = []
        var chosen: SMTPSession?
        for place in lease.addresses {
            let session = SMTPSession(host: place.host, address: place.address, port: direct.port, settings: worker.sessionSettings)
            do {
                try session.open()
                chosen = session
                break
            } catch {
                failures.append("\(place): \(error)")
                worker.board.update(id) { $0.connectionFailures += 1 }
            }
        }
        guard let session = chosen else {
            let reason = failures.isEmpty ? "no address for \(lease.site)" : "every address failed: " + failures.joined(separator: "; ")
            let waiting = direct.sites.rest(lease, reason: reason)
            Log.warning("site \(lease.site): \(reason); it rests \(Int(Limits.siteRest)) s, \(waiting.count) part(s) deferred")
            let outcome = RecipientOutcome(.deferred, origin: .connection(.notConnected(reason)))
            for entry in waiting {
                for settlement in entry.job.record(nil, part: entry.part, decidedAs: { _, _ in outcome }, worker: id, relay: lease.site.description, executor: executor).ended {
                    worker.settle(settlement)
                }
            }
            return
        }
        worker.board.update(id) {
            $0.state = .busy
            $0.connections += 1
            $0.peer = session.peer
            $0.tls = session.tlsDescription.map { $0 + (session.tlsVerified ? " (verified)" : " (not verified)") }
        }
        deliver(on: session, lease: lease)
        direct.sites.release(lease, tls: session.tlsDescription)
    }

    private mutating func deliver(on session: SMTPSession, lease: SiteLease) {
        var inFlight: [TransactionTag: BinEntry] = [:]
        var nextTag: UInt64 = 1
        var sent = 0
        var throttled = false
        while true {
            while !throttled, !worker.isStopping, !worker.isPaused, sent < direct.maxMessages,
                  session.isOpen, session.hasRoom, let entry = direct.sites.next(for: lease) {
                guard let next = entry.job.claim(entry.part) else { continue }
                let message: any MessageSource
                switch SevenBitSafety.check(next.message, for: session, policy: worker.spec.settings.eightBit) {
                case .send(let m): message = m
                case .decided(let outcome):
                    // Claimed, so in flight: its result is recorded as if the relay had given it.
                    let result = TransactionResult(tag: TransactionTag(0), outcomes: next.envelope.recipients.map { _ in outcome })
                    for s in entry.job.record(result, part: entry.part, worker: id, relay: session.host, executor: executor).ended { worker.settle(s) }
                    continue
                }
                let tag = TransactionTag(nextTag)
                nextTag += 1
                inFlight[tag] = entry
                worker.board.update(id) { $0.job = entry.job.job.name.fileName }
                session.submit(OutgoingTransaction(tag: tag, envelope: next.envelope, message: message))
                sent += 1
            }
            if inFlight.isEmpty { break }
            for result in session.advance() {
                guard let entry = inFlight.removeValue(forKey: result.tag) else { continue }
                if let reply = result.outcomes.compactMap(\.reply).first(where: { $0.code == 421 || ($0.isTransient && $0.enhancedStatus?.hasPrefix("4.7.") == true) }) {
                    // The site asks us to slow down: one connection, a pause, not its other exchangers.
                    direct.sites.throttle(lease.site, reply: reply.description)
                    throttled = true
                }
                let count = entry.job.recipients(of: entry.part)
                let (again, ended) = entry.job.record(result, part: entry.part, worker: id, relay: session.host, executor: executor)
                for q in again { direct.sites.putBack(BinEntry(job: entry.job, part: q, since: entry.since), site: lease.site) }
                let kinds = result.outcomes.map(\.kind)
                direct.sites.note(lease.site, recipients: count - again.count, delivered: kinds.filter { $0 == .delivered }.count,
                                  deferred: kinds.filter { $0 == .deferred }.count, failed: kinds.filter { $0 == .failed }.count,
                                  reply: result.outcomes.first?.diagnostic)
                for settlement in ended { worker.settle(settlement) }
            }
        }
        for result in session.close() {
            Log.error("worker \(id): a result after the site's transactions ended: \(result.tag)")
        }
    }
}
