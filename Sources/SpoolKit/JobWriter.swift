// Adds a new job to the spool: a fresh all-digit id (so it has a spool id), written
// atomically and durably under a name never used before (link(2) refuses to replace).
// `poolctl submit` and the daemon's DSNs both come through here.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum JobWriter {
    /// Writes `bytes` (a valid BSMTP job) as a new job of `pool`; returns its name.
    public static func submit(_ bytes: [UInt8], pool: Pool, spool: Spool) throws -> JobName {
        var lastError: (any Error)?
        for _ in 0..<100 {
            let name = JobName("\(pool)\(freshID()).MAIL")!
            do {
                try AtomicFile.write(directory: spool.root, name: name.fileName, bytes: bytes, mode: 0o640, replace: false)
                announce(spool.root + "/" + name.fileName)
                return name
            } catch let error as SystemError where error.isExisting {
                lastError = error
                continue
            }
        }
        throw lastError ?? SystemError("submit", path: spool.root, errno: EEXIST)
    }

    /// The job came in by link(2), which a watcher sees as IN_CREATE, an event poold must
    /// not act on (a file created in place may still be being written). Opening the
    /// finished file for writing and closing it gives the IN_CLOSE_WRITE poold does watch.
    static func announce(_ path: String) {
        if let fd = try? FileDescriptor.open(path, O_WRONLY) { fd.close() }
    }

    /// 18 digits: seconds since 2020, microseconds, and the pid's last three digits, so
    /// ids grow with time and two writers rarely meet (a clash takes the next microsecond).
    public static func freshID() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        let seconds = Int(tv.tv_sec) - 1_577_836_800
        func padded(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return padded(seconds, 9) + padded(Int(tv.tv_usec), 6) + padded(Int(getpid()) % 1000, 3)
    }

    /// A BSMTP job for one message: envelope lines, the message dot-stuffed with CRLF
    /// line ends, the final dot. `senderParameters` go on the MAIL FROM line.
    public static func bsmtp(message: [UInt8], from: String, to: [String], senderParameters: [String] = []) -> [UInt8] {
        var out = Array("MAIL FROM:<\(from)>\(senderParameters.map { " " + $0 }.joined())\r\n".utf8)
        for address in to { out += Array("RCPT TO:<\(address)>\r\n".utf8) }
        out += Array("DATA\r\n".utf8)
        var lines = message.split(separator: 10, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for var line in lines {
            if line.last == 13 { line.removeLast() }
            if line.first == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out += line
            out += [13, 10]
        }
        out += Array(".\r\n".utf8)
        return out
    }
}
