// The daemon's internal limits, named, with their defaults, in one place. What an operator
// may change is a configuration key (SiteConfiguration); these are the rest.

enum Limits {
    /// A relay that cannot be reached rests this long, doubling from the first bound to the second.
    static let relayBackoff: ClosedRange<Duration> = .seconds(5) ... .seconds(120)
    /// How often a paused, closed or resting worker looks at its situation again.
    static let idleRecheck: Duration = .milliseconds(250)
    /// How often the status file is written; METRICS_FILE every `metricsEvery` of those.
    static let statusInterval: Duration = .seconds(1)
    static let metricsEvery = 5
    /// A stray temporary file older than this is removed at start.
    static let temporaryFileAge: Double = 3600
    /// Direct delivery: a site whose every address failed is left alone this long (seconds).
    static let siteRest: Double = 300
    /// A site that said 421 or 4.7.x gets one connection at a time for this long, and
    /// waits this long between connections.
    static let siteThrottle: Double = 300
    static let siteThrottlePause: Double = 10
    /// Jobs an MX worker takes from the queue (to fill the bins) before it serves a site.
    static let directIntake = 64
    /// Shares of distributed jobs status remembers (the newest).
    static let sharesShown = 200
    /// Stack of a worker thread.
    static let workerStack = 1 << 20
    /// Threads that unlink finished jobs (each unlink may wait for the disk: ext4 with
    /// `discard` issues a discard per freed file; several waits overlap).
    static let reaperThreads = 4
    /// Jobs a reaper thread takes at once; a second thread is woken when more wait.
    static let reaperBatch = 8
    /// Finished jobs waiting for the reaper before a worker that finishes another waits.
    static let reaperBacklog = 1024
    /// Lines in a segment of a worker's finished log before it starts the next one.
    static let finishedSegmentLines = 4096
}
