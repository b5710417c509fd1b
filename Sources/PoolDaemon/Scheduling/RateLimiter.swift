// SMTP_RATE_LIMIT (LISTSERV syntax `12Mbps AB:1.5Mbps C:150kbps`): bytes on the wire,
// server-wide and per pool group. A send is charged to the server-wide bucket and to the
// bucket of every group that names its pool, and waits for the slowest of them, so the
// stricter limit wins at every moment. Buckets lend (a 128 KiB chunk may overdraw) and
// the borrower waits off the debt, so the long-run rate holds whatever the chunk size.

import Foundation
import SMTPClient
import SpoolKit
import Synchronization

final class RateLimiter: Sendable {
    fileprivate struct Bucket {
        let pools: PoolSet?
        let bytesPerSecond: Double
        /// The most a quiet bucket saves up: a quarter second's worth.
        let capacity: Double
        var tokens: Double
        var updated: ContinuousClock.Instant
        init(_ limit: RateLimit, now: ContinuousClock.Instant) {
            pools = limit.pools
            bytesPerSecond = limit.bitsPerSecond / 8
            capacity = max(bytesPerSecond / 4, 1500)
            tokens = capacity
            updated = now
        }
    }

    private let buckets: Locked<[Bucket]>
    let isActive: Bool

    init(_ limits: [RateLimit]) {
        let now = ContinuousClock.now
        buckets = Locked(limits.map { Bucket($0, now: now) })
        isActive = !limits.isEmpty
    }

    /// Charges `bytes` sent for a job of `pool`, sleeping as long as the stricter bucket asks.
    func charge(_ bytes: Int, pool: Pool) {
        guard isActive, bytes > 0 else { return }
        let wait: Double = buckets.withLock { buckets in
            let now = ContinuousClock.now
            var longest = 0.0
            for i in buckets.indices where buckets[i].pools?.contains(pool) ?? true {
                buckets[i].charge(bytes, now: now, longest: &longest)
            }
            return longest
        }
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
    }
}

extension RateLimiter.Bucket {
    /// Refills for the time passed, takes `bytes`, and raises `longest` to the wait a debt asks.
    mutating func charge(_ bytes: Int, now: ContinuousClock.Instant, longest: inout Double) {
        let passed = now - updated
        let seconds = Double(passed.components.seconds) + Double(passed.components.attoseconds) / 1e18
        tokens = min(capacity, tokens + seconds * bytesPerSecond)
        updated = now
        tokens -= Double(bytes)
        if tokens < 0 { longest = max(longest, -tokens / bytesPerSecond) }
    }
}

/// The message of a transaction, charged to the rate limiter as it streams.
struct ThrottledMessage: MessageSource {
    let message: any MessageSource
    let limiter: RateLimiter
    let pool: Pool
    var wireSize: Int64 { message.wireSize }
    var unstuffedSize: Int64? { message.unstuffedSize }
    func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try message.stream { chunk in
            limiter.charge(chunk.count, pool: pool)
            try sink(chunk)
        }
    }
}
