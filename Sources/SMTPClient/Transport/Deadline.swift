// Deadlines on the continuous (monotonic) clock: every wait of a session ends at one.
// poll(2) takes milliseconds; a deadline that has passed gives 0, so a wait at or after
// its deadline returns at once.

/// A point on the continuous clock by which something must have happened.
public struct Deadline: Sendable, Comparable {
    public let instant: ContinuousClock.Instant

    public init(_ instant: ContinuousClock.Instant) { self.instant = instant }

    public static func after(_ interval: Duration) -> Deadline { Deadline(.now + interval) }

    /// A deadline that has already passed: a wait with it only looks.
    public static var immediately: Deadline { Deadline(.now) }

    /// Milliseconds left, rounded up, for poll(2); 0 when passed.
    var remainingMilliseconds: Int32 {
        let left = instant - .now
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.instant < b.instant }
}
