// SMTP_RATE_LIMIT (LISTSERV syntax `12Mbps AB:1.5Mbps C:150kbps`): bytes on the wire,
// server-wide and per pool group. A send is charged to the server-wide bucket and to the
// bucket of every group that names its pool, and waits for the slowest of them, so the
// stricter limit wins at every moment. Buckets lend (a 128 KiB chunk may overdraw) and
// the borrower waits off the debt, so the long-run rate holds whatever the chunk size.

import Foundation
import SMTPClient
import SpoolKit

final class RateLimiter: @unchecked Sendable {
    private final class Bucket {
        let pools: PoolSet?
        let bytesPerSecond: Double
        /// The most a quiet bucket saves up: a quarter second's worth.
        let capacity: Double
        var tokens: Double
        var updated: Double
        init(_ limit: RateLimit, now: Double) {
            pools = limit.pools
            bytesPerSecond = limit.bitsPerSecond / 8
            capacity = max(bytesPerSecond / 4, 1500)
            tokens = capacity
            updated = now
        }
    }

    private let lock = NSLock()
    private let buckets: [Bucket]
    var isActive: Bool { !buckets.isEmpty }

    init(_ limits: [RateLimit]) {
        let now = Deadline.now()
        buckets = limits.map { Bucket($0, now: now) }
    }

    /// Charges `bytes` sent for a job of `pool`, sleeping as long as the stricter bucket asks.
    func charge(_ bytes: Int, pool: Pool) {
        guard !buckets.isEmpty, bytes > 0 else { return }
        let wait: Double = lock.withLock {
            let now = Deadline.now()
            var longest = 0.0
            for bucket in buckets where bucket.pools?.contains(pool) ?? true {
                bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.bytesPerSecond)
                bucket.updated = now
                bucket.tokens -= Double(bytes)
                if bucket.tokens < 0 { longest = max(longest, -bucket.tokens / bucket.bytesPerSecond) }
            }
            return longest
        }
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
    }
}

/// The message of a transaction, charged to the rate limiter as it streams.
struct ThrottledMessage: MessageSource {
    let reader: MessageReader
    let limiter: RateLimiter
    let pool: Pool
    var wireSize: Int64 { reader.wireSize }
    var unstuffedSize: Int64? { reader.unstuffedSize }
    func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try reader.stream { chunk in
            limiter.charge(chunk.count, pool: pool)
            try sink(chunk)
        }
    }
}
