// Tells systemd how the service is doing, as sd_notify(3) does, without libsystemd: one
// datagram per message to the AF_UNIX socket named by NOTIFY_SOCKET (a path, or `@name`
// in the abstract namespace). Without NOTIFY_SOCKET every call is a no-op, so the daemon
// calls it unconditionally. A message that cannot be sent is logged once and dropped:
// systemd's view of the service is never a reason to stop delivering mail.
//
// The watchdog (WATCHDOG_USEC, from WatchdogSec=) wants WATCHDOG=1 at least that often;
// `pingWatchdog()` sends it at most every half of it, and is meant to be called from a
// loop whose progress proves the daemon alive (the status loop), not from a thread of
// its own that would keep pinging a wedged daemon.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import SMTPClient
import Foundation
import SpoolKit
import Synchronization

final class SystemdNotifier: Sendable {
    /// Where the messages go; nil when not started by systemd (or NOTIFY_SOCKET is unusable).
    let address: NotifyAddress?
    /// How often to send WATCHDOG=1 (half of WATCHDOG_USEC), in seconds; nil: no watchdog.
    let watchdogInterval: Double?

    private let lastPing = Locked<Double?>(nil)
    private let lastStatus = Locked<String?>(nil)
    private let warned = Atomic<Bool>(false)

    /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from `environment`. As in
    /// sd_watchdog_enabled(3), a WATCHDOG_PID that is not `processID` means the watchdog
    /// is meant for another process.
    init(environment: [String: String] = ProcessInfo.processInfo.environment, processID: Int32 = getpid()) {
        address = environment["NOTIFY_SOCKET"].flatMap(NotifyAddress.init)
        if let text = environment["NOTIFY_SOCKET"], !text.isEmpty, address == nil {
            Log.warning("NOTIFY_SOCKET=\(text) is neither a path nor @name: systemd will not hear from poold")
        }
        var interval: Double?
        if let usec = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0 {
            let pid = environment["WATCHDOG_PID"].flatMap { Int32($0) }
            if pid == nil || pid == processID { interval = Double(usec) / 2_000_000 }
        }
        watchdogInterval = address == nil ? nil : interval
    }

    var isEnabled: Bool { address != nil }

    /// Sends one message: lines of `KEY=VALUE` (`READY=1`, `STATUS=…`, `WATCHDOG=1`,
    /// `STOPPING=1`, …). True when it was sent; false when there is no socket or it failed.
    @discardableResult
    func send(_ state: String) -> Bool {
        guard let address else { return false }
        do {
            try UnixDatagram.send(Array(state.utf8), to: address)
            warned.store(false, ordering: .relaxed)
            return true
        } catch {
            if !warned.exchange(true, ordering: .relaxed) {
                Log.warning("cannot notify systemd at \(address): \(error)")
            }
            return false
        }
    }

    /// READY=1 with the first status line: systemd considers the start done.
    func ready(status: String) {
        lastStatus.withLock { $0 = status }
        send("READY=1\nSTATUS=" + SystemdNotifier.oneLine(status))
    }

    /// STATUS=…, only when it differs from the last one sent (the status loop calls it every second).
    func status(_ text: String) {
        let line = SystemdNotifier.oneLine(text)
        let changed = lastStatus.withLock { last in
            if last == line { return false }
            last = line
            return true
        }
        if changed { send("STATUS=" + line) }
    }

    /// RELOADING=1 before re-reading the configuration; send READY=1 (`ready(status:)`)
    /// when done. systemd ≥ 253 wants MONOTONIC_USEC with it (for Type=notify-reload).
    func reloading() {
        send("RELOADING=1\nMONOTONIC_USEC=\(UInt64(SystemdNotifier.monotonicSeconds() * 1_000_000))")
    }

    /// STOPPING=1: the daemon is finishing the transactions in hand. systemd stops the
    /// watchdog from here on, so the pings may end.
    func stopping() {
        send("STOPPING=1")
    }

    /// WATCHDOG=1 when `watchdogInterval` has passed since the last one (or none was sent).
    func pingWatchdog(now: Double = SystemdNotifier.monotonicSeconds()) {
        guard let interval = watchdogInterval else { return }
        let due = lastPing.withLock { last in
            if let last, now - last < interval { return false }
            last = now
            return true
        }
        if due { send("WATCHDOG=1") }
    }

    /// A notification field must stay on one line.
    static func oneLine(_ text: String) -> String {
        text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    /// CLOCK_MONOTONIC in seconds: the clock systemd's MONOTONIC_USEC and timers use.
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// The short STATUS= line `systemctl status poold` shows.
extension StatusSnapshot {
    var systemdStatus: String {
        let queued = pools.values.reduce(0) { $0 + $1.queued }
        var states: [WorkerStatus.State: Int] = [:]
        for w in workers { states[w.state, default: 0] += 1 }
        let order: [WorkerStatus.State] = [.busy, .idle, .closed, .down, .paused, .stopped]
        let workerText = order.compactMap { s in states[s].map { "\($0) \(s.rawValue)" } }.joined(separator: ", ")
        let delivered = workers.reduce(0) { $0 + $1.delivered }
        return "\(queued) queued, \(deferred) deferred, \(bad) bad; workers: \(workerText.isEmpty ? "none" : workerText); \(delivered) delivered"
    }
}

/// NOTIFY_SOCKET: `/path` or `@name` (abstract namespace; the address starts with NUL).
struct NotifyAddress: Sendable, Equatable, CustomStringConvertible {
    /// The bytes of sun_path, leading NUL included for an abstract name; no trailing NUL.
    let pathBytes: [UInt8]

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, !bytes.contains(0) else { return nil }
        switch bytes[0] {
        case UInt8(ascii: "/"): pathBytes = bytes
        case UInt8(ascii: "@"): pathBytes = [0] + bytes.dropFirst()
        default: return nil
        }
        // sun_path holds 108 bytes; a path needs its NUL, an abstract name does not.
        guard pathBytes.count + (pathBytes[0] == 0 ? 0 : 1) <= UnixDatagram.maxPathBytes else { return nil }
    }

    var description: String {
        pathBytes.first == 0 ? "@" + String(decoding: pathBytes.dropFirst(), as: UTF8.self) : String(decoding: pathBytes, as: UTF8.self)
    }
}

/// The system calls behind the notifier: socket(2), sendto(2), close(2).
enum UnixDatagram {
    static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
    /// A full socket buffer or a signal gets this many tries.
    static let attempts = 3

    /// `sendto(2)` of one datagram on a fresh AF_UNIX socket (as sd_notify does).
    static func send(_ payload: [UInt8], to address: NotifyAddress) throws(SystemError) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_UNIX)") }
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            raw.copyBytes(from: address.pathBytes)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.pathBytes.count
                               + (address.pathBytes[0] == 0 ? 0 : 1))
        var lastErrno: Int32 = 0
        for _ in 0..<attempts {
            let sent = payload.withUnsafeBytes { bytes in
                withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                    }
                }
            }
            if sent == payload.count { return }
            lastErrno = sent < 0 ? errno : EMSGSIZE
            if lastErrno != EINTR && lastErrno != EAGAIN { break }
        }
        throw SystemError("sendto", path: address.description, errno: lastErrno)
    }
}
