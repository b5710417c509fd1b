// Options the grammar accepts but this build cannot honour yet. poold refuses to start
// with them (and `poolctl check` says so) rather than send in plain text what was asked
// to go encrypted, or ignore a schedule the operator relies on.

extension SiteConfiguration {
    /// The first option that this build does not carry out, named with its line.
    public var unsupportedFeature: String? {
        for w in workerLines {
            let at = "line \(w.line) (SMTP_FORWARD_\(w.number))"
            if w.tls == .require || w.tls == .smtps { return "\(at): TLS=\(w.tls.rawValue) is not supported by this build yet" }
            if w.tlsCA != nil { return "\(at): TLS_CA= is not supported by this build yet" }
            if w.authUser != nil || w.secretFile != nil { return "\(at): AUTH= is not supported by this build yet" }
            if !w.windows.isEmpty { return "\(at): open-time windows are not supported by this build yet" }
            if w.failover != nil { return "\(at): a failover host is not supported by this build yet" }
            if w.maxSizeKB != nil { return "\(at): MAXSIZE= is not supported by this build yet" }
        }
        if strictRoundRobin { return "SMTP_STRICTLY_ROUND_ROBIN=1 is not supported by this build yet" }
        if !rateLimits.isEmpty { return "SMTP_RATE_LIMIT is not supported by this build yet" }
        if !sizeBinsKB.isEmpty { return "SIZE_BINS is not supported by this build yet" }
        return nil
    }
}
