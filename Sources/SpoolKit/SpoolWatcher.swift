// Notices new jobs: inotify on the spool directory (IN_MOVED_TO for renamed-in jobs,
// IN_CLOSE_WRITE for writers that create `.MAIL` names directly), and a full rescan every
// `rescanInterval` as a safety net (and at once when the kernel's event queue overflowed).
// It only reports names; the daemon's index decides what is new.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import Synchronization

public final class SpoolWatcher: Sendable {
    public let spool: Spool
    public let rescanInterval: Double
    private let stopped = Atomic<Bool>(false)
    private let fd: Int32

    /// Watches `spool.root`; lists it again every `rescanInterval` seconds.
    public init(spool: Spool, rescanInterval: Double) throws {
        self.spool = spool
        self.rescanInterval = rescanInterval
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError("inotify_init1") }
        guard inotify_add_watch(fd, spool.root, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE)) >= 0 else {
            let error = SystemError("inotify_add_watch", path: spool.root)
            Glibc.close(fd)
            throw error
        }
    }

    deinit { Glibc.close(fd) }

    public func stop() { stopped.store(true, ordering: .relaxed) }

    /// Runs until `stop()`; call on a thread of its own. Wakes at least once a second.
    /// `onNames`: names inotify reported; `onRescan`: every job name in the spool, or why
    /// the spool could not be listed.
    public func run(onNames: ([JobName]) -> Void, onRescan: (Result<[JobName], any Error>) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var lastScan = Date().timeIntervalSince1970
        while !stopped.load(ordering: .relaxed) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 1000)
            var overflow = false
            if ready > 0 {
                var names: [JobName] = []
                while true {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    overflow = SpoolWatcher.parse(buffer, count: n, into: &names) || overflow
                }
                if !names.isEmpty { onNames(names) }
            }
            let now = Date().timeIntervalSince1970
            if overflow || now - lastScan >= rescanInterval {
                lastScan = now
                onRescan(Result { try spool.jobs() })
            }
        }
    }

    /// Cuts `inotify_event`s out of the buffer; true when the queue overflowed.
    static func parse(_ buffer: [UInt8], count: Int, into names: inout [JobName]) -> Bool {
        var overflow = false
        var offset = 0
        let header = 16  // wd, mask, cookie, len: four 32-bit fields
        buffer.withUnsafeBytes { raw in
            while offset + header <= count {
                let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflow = true }
                if length > 0 {
                    let bytes = raw[(offset + header)..<(offset + header + length)].prefix { $0 != 0 }
                    if let name = JobName(String(decoding: bytes, as: UTF8.self)) { names.append(name) }
                }
                offset += header + length
            }
        }
        return overflow
    }
}
