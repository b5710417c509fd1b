// A value behind a lock, reached only inside `withLock` — the shape of the standard
// library's `Synchronization.Mutex`, which this replaces: on Linux, Mutex takes its lock
// in code ThreadSanitizer does not see (a futex), so TSan reports races between accesses
// the lock does order. This one locks a pthread mutex (through NSLock), which TSan
// understands, so `swift test --sanitize=thread` checks the daemon's shared state for real.

import Foundation

public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    /// Reached only under `lock`, which is what keeps two accesses apart: the runtime's
    /// exclusivity check (a thread-local lookup on every call) would only repeat it.
    @exclusivity(unchecked) private var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with the value, holding the lock.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
