// What `poolctl status` shows: the spool as it stands on disk, and the workers as the
// daemon last reported them in `.state/status.json` (written atomically every second).
// The JSON keys are the contract in MISSION.md ("Operations").

import Foundation

public struct WorkerStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable, CaseIterable { case idle, busy, closed, down, paused, stopped, unknown }
    public var id: Int
    public var host: String
    public var pools: String
    public var state: State
    public var job: String?
    /// When the current state began (epoch seconds).
    public var since: Double?
    public var peer: String?
    public var pipelining: Bool?
    public var delivered = 0
    public var deferred = 0
    public var failed = 0
    public var quarantined = 0
    public var connections = 0
    public var connectionFailures = 0
    /// Jobs finished: every recipient decided (delivered or failed for good), or moved to bad/.
    public var jobs = 0
    /// Message bytes (wire form) of the transactions a relay accepted.
    public var bytes: Int64 = 0
    public var lastError: String?
    /// The connection's TLS, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 (verified)"; nil when plain.
    public var tls: String?

    public init(id: Int, host: String, pools: String, state: State) {
        self.id = id
        self.host = host
        self.pools = pools
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case id, host, pools, state, job, since, peer, pipelining, delivered, deferred, failed, quarantined, connections
        case connectionFailures = "connection_failures"
        case jobs, bytes, tls
        case lastError = "last_error"
    }

    /// Counters missing from the JSON (written by an older daemon) read as 0.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        host = try c.decode(String.self, forKey: .host)
        pools = try c.decode(String.self, forKey: .pools)
        state = try c.decode(State.self, forKey: .state)
        job = try c.decodeIfPresent(String.self, forKey: .job)
        since = try c.decodeIfPresent(Double.self, forKey: .since)
        peer = try c.decodeIfPresent(String.self, forKey: .peer)
        pipelining = try c.decodeIfPresent(Bool.self, forKey: .pipelining)
        delivered = try c.decodeIfPresent(Int.self, forKey: .delivered) ?? 0
        deferred = try c.decodeIfPresent(Int.self, forKey: .deferred) ?? 0
        failed = try c.decodeIfPresent(Int.self, forKey: .failed) ?? 0
        quarantined = try c.decodeIfPresent(Int.self, forKey: .quarantined) ?? 0
        connections = try c.decodeIfPresent(Int.self, forKey: .connections) ?? 0
        connectionFailures = try c.decodeIfPresent(Int.self, forKey: .connectionFailures) ?? 0
        jobs = try c.decodeIfPresent(Int.self, forKey: .jobs) ?? 0
        bytes = try c.decodeIfPresent(Int64.self, forKey: .bytes) ?? 0
        lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
        tls = try c.decodeIfPresent(String.self, forKey: .tls)
    }
}

public struct PoolCount: Codable, Sendable, Equatable {
    public var queued: Int
    public var bytes: Int64
    public init(queued: Int = 0, bytes: Int64 = 0) {
        self.queued = queued
        self.bytes = bytes
    }
}

/// A mail-merge job being delivered: its rows and how fast they go.
public struct MergeProgress: Codable, Sendable, Equatable {
    public var job: String
    /// Rows in the table.
    public var rows: Int
    /// Rows delivered and failed for good, over every pass.
    public var delivered: Int
    public var failed: Int
    /// Rows deferred in this pass.
    public var deferred: Int
    /// 1 for the first pass, 2 for the first retry, …
    public var pass: Int
    public var slices: Int
    public var slicesOpen: Int
    /// Rows decided per second in this pass.
    public var rate: Double
    /// At that rate, seconds until this pass has tried every row.
    public var secondsLeft: Double?

    public init(job: String, rows: Int, delivered: Int, failed: Int, deferred: Int, pass: Int, slices: Int, slicesOpen: Int,
                rate: Double, secondsLeft: Double?) {
        self.job = job
        self.rows = rows
        self.delivered = delivered
        self.failed = failed
        self.deferred = deferred
        self.pass = pass
        self.slices = slices
        self.slicesOpen = slicesOpen
        self.rate = rate
        self.secondsLeft = secondsLeft
    }

    enum CodingKeys: String, CodingKey {
        case job, rows, delivered, failed, deferred, pass, slices, rate
        case slicesOpen = "slices_open"
        case secondsLeft = "seconds_left"
    }
}

/// A destination of direct delivery (MX lines): a set of mail exchangers.
public struct SiteStatus: Codable, Sendable, Equatable {
    /// Its exchangers' names, `mx1.example.org,mx2.example.org`.
    public var site: String
    /// Recipients waiting for it.
    public var queued: Int
    public var connections: Int
    /// sending, waiting, idle, throttled or resting.
    public var state: String
    public var lastReply: String?
    /// The TLS of its last connection, nil when plain.
    public var tls: String?
    public var delivered: Int
    public var deferred: Int
    public var failed: Int

    public init(site: String, queued: Int, connections: Int, state: String, lastReply: String?, tls: String?,
                delivered: Int, deferred: Int, failed: Int) {
        self.site = site
        self.queued = queued
        self.connections = connections
        self.state = state
        self.lastReply = lastReply
        self.tls = tls
        self.delivered = delivered
        self.deferred = deferred
        self.failed = failed
    }

    enum CodingKeys: String, CodingKey {
        case site, queued, connections, state, tls, delivered, deferred, failed
        case lastReply = "last_reply"
    }
}

/// A share of a distributed job (DIST_FORWARD), as this instance sent it.
public struct ShareStatus: Codable, Sendable, Equatable {
    public var id: String
    /// The job it was cut from.
    public var origin: String
    /// `i/n`.
    public var share: String
    /// The peer's address, or SELF.
    public var peer: String
    /// `rows 1-250` or `recipients 1-40`.
    public var items: String
    /// The job that carries it here: the share message, or SELF's share.
    public var job: String
    /// local, queued, accepted, or processed here (the relays refused it).
    public var state: String

    public init(id: String, origin: String, share: String, peer: String, items: String, job: String, state: String) {
        self.id = id
        self.origin = origin
        self.share = share
        self.peer = peer
        self.items = items
        self.job = job
        self.state = state
    }
}

public struct StatusSnapshot: Codable, Sendable {
    public var daemon: String            // "running" | "stopped"
    public var pid: Int32?
    public var started: Double?
    public var updated: Double?
    public var pools: [String: PoolCount]
    public var deferred: Int
    public var bad: Int
    /// Jobs set aside with `poolctl hold JOB` (in hold/; nil from an older daemon).
    public var held: Int?
    /// Pools `poolctl hold POOL` stopped until released or restarted (nil: none).
    public var heldPools: [String]?
    public var workers: [WorkerStatus]
    /// Mail-merge jobs being delivered now (nil in a status written by an older daemon).
    public var merges: [MergeProgress]?
    /// The busiest sites of direct delivery (nil without MX lines).
    public var sites: [SiteStatus]?
    /// Shares of distributed jobs sent in this run (nil without DIST_FORWARD).
    public var shares: [ShareStatus]?

    public init(daemon: String, pools: [String: PoolCount] = [:], deferred: Int = 0, bad: Int = 0, workers: [WorkerStatus] = []) {
        self.daemon = daemon
        self.pools = pools
        self.deferred = deferred
        self.bad = bad
        self.workers = workers
    }

    /// The spool as it is on disk: queued jobs and bytes per pool, deferred and bad counts.
    public static func scan(_ spool: Spool) -> StatusSnapshot {
        var snapshot = StatusSnapshot(daemon: "stopped")
        for name in (try? spool.jobs()) ?? [] {
            let size = (try? FileSystem.status(spool.root + "/" + name.fileName))?.size ?? 0
            snapshot.pools[name.pool.description, default: PoolCount()].queued += 1
            snapshot.pools[name.pool.description, default: PoolCount()].bytes += size
        }
        snapshot.deferred = ((try? spool.jobs(in: spool.deferredDirectory)) ?? []).count
        snapshot.bad = spool.badJobs().count
        snapshot.held = spool.heldJobs().count
        return snapshot
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> StatusSnapshot? {
        try? JSONDecoder().decode(StatusSnapshot.self, from: Data(bytes))
    }
}
