// Time as the daemon sees it. Two clocks, each for its own job:
// - `WallClock` (injected) for what is about the calendar: open-time windows, when a
//   deferred job is due, journal stamps, QUEUE_LIFETIME. Tests move it instead of sleeping.
// - `ContinuousClock` (SMTPClient's `Deadline`, a relay's pause after failures) for how long
//   to wait: it never jumps when the wall clock is set.

import Foundation

struct WallClock: Sendable {
    let now: @Sendable () -> Date

    init(_ now: @escaping @Sendable () -> Date) { self.now = now }

    static let system = WallClock { Date() }

    /// Seconds since 1970, as journals and the timetable keep them.
    var seconds: Double { now().timeIntervalSince1970 }
}
