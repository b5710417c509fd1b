// One line per event on stderr. Under systemd (JOURNAL_STREAM set) each line starts with
// the syslog level in angle brackets, which journald turns into the entry's priority;
// on a terminal it starts with the level's name.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

enum Log {
    enum Level: Int32 { case error = 3, warning = 4, notice = 5, info = 6, debug = 7 }

    nonisolated(unsafe) static var underJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    nonisolated(unsafe) static var verbose = false

    static func error(_ message: String) { write(.error, message) }
    static func warning(_ message: String) { write(.warning, message) }
    static func notice(_ message: String) { write(.notice, message) }
    static func info(_ message: String) { write(.info, message) }
    static func debug(_ message: String) { if verbose { write(.debug, message) } }

    static func write(_ level: Level, _ message: String) {
        let prefix: String
        if underJournal {
            prefix = "<\(level.rawValue)>"
        } else {
            switch level {
            case .error: prefix = "error: "
            case .warning: prefix = "warning: "
            case .notice: prefix = "notice: "
            case .info: prefix = "info: "
            case .debug: prefix = "debug: "
            }
        }
        // One write(2) per line keeps lines from different threads whole.
        var line = Array(prefix.utf8)
        line.reserveCapacity(prefix.utf8.count + message.utf8.count + 1)
        for byte in message.utf8 { line.append(byte == 10 ? 32 : byte) }
        line.append(10)
        line.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
