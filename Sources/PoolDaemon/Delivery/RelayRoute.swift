// One relay a worker may use (its first host, or its failover), with its connection and its
// pause after failures: a relay that cannot be reached is left alone for a growing pause
// (`Limits.relayBackoff`, 5 s doubling up to 2 min) and then tried again, so a worker
// returns to its first host by itself. Used by its worker's thread only.

import SMTPClient
import SpoolKit

final class RelayRoute {
    let relay: RelayHost
    let session: SMTPSession
    /// Not to be tried before this instant (nil: try at will).
    private(set) var downUntil: ContinuousClock.Instant?
    private var backoff = Limits.relayBackoff.lowerBound

    init(_ relay: RelayHost, settings: SessionSettings) {
        self.relay = relay
        session = SMTPSession(host: relay.host, port: relay.port, settings: settings)
    }

    var isResting: Bool { downUntil.map { ContinuousClock.now < $0 } ?? false }

    /// The connection, opened when it is closed or no longer answers.
    func connect() throws(SessionError) {
        if session.isOpen && session.checkAlive() { return }
        do {
            try session.open()
            backoff = Limits.relayBackoff.lowerBound
            downUntil = nil
        } catch {
            downUntil = .now + backoff
            backoff = min(backoff * 2, Limits.relayBackoff.upperBound)
            throw error
        }
    }
}
