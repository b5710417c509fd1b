// One line per event on stderr. Under systemd (JOURNAL_STREAM set) each line starts with
// the syslog level in angle brackets, which journald turns into the entry's priority;
// on a terminal it starts with the level's name.
// A line is assembled as bytes in a buffer on the stack (`LogLine`) and leaves in one
// write(2), so lines from different threads stay whole and the per-transaction line of a
// busy worker costs no String building and no heap allocation.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import Synchronization

enum Log {
    enum Level: Int32 { case error = 3, warning = 4, notice = 5, info = 6, debug = 7 }

    nonisolated(unsafe) static var underJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    private static let verboseFlag = Atomic<Bool>(false)
    /// `--verbose`: debug lines too. Atomic: any thread may log while it is set.
    static var verbose: Bool {
        get { verboseFlag.load(ordering: .relaxed) }
        set { verboseFlag.store(newValue, ordering: .relaxed) }
    }

    static func error(_ message: String) { write(.error, message) }
    static func warning(_ message: String) { write(.warning, message) }
    static func notice(_ message: String) { write(.notice, message) }
    static func info(_ message: String) { write(.info, message) }
    static func debug(_ message: String) { if verbose { write(.debug, message) } }

    static func write(_ level: Level, _ message: String) {
        write(level) { $0.append(message) }
    }

    /// Writes the line `body` assembles, with the level's prefix and a line end.
    static func write(_ level: Level, _ body: (inout LogLine) -> Void) {
        LogLine.withLine { line in
            if underJournal {
                line.append(byte: UInt8(ascii: "<"))
                line.append(Int(level.rawValue))
                line.append(byte: UInt8(ascii: ">"))
            } else {
                switch level {
                case .error: line.append("error: " as StaticString)
                case .warning: line.append("warning: " as StaticString)
                case .notice: line.append("notice: " as StaticString)
                case .info: line.append("info: " as StaticString)
                case .debug: line.append("debug: " as StaticString)
                }
            }
            body(&line)
            line.append(byte: 10)
            line.withBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
        }
    }
}

/// A log line being assembled: bytes in a stack buffer (a heap array only for a line longer
/// than it). A line feed inside appended text becomes a space: one event, one line.
struct LogLine {
    static let stackCapacity = 1024
    private var buffer: UnsafeMutableBufferPointer<UInt8>
    private var count = 0
    private var spill: [UInt8]?

    private init(buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    /// Runs `body` with an empty line whose buffer lives on the stack for the call.
    static func withLine<R>(_ body: (inout LogLine) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: stackCapacity) { storage in
            var line = LogLine(buffer: storage)
            return body(&line)
        }
    }

    /// The bytes so far (valid during the call).
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let spill { return spill.withUnsafeBufferPointer(body) }
        return body(UnsafeBufferPointer(rebasing: buffer[0..<count]))
    }

    /// The bytes from `offset` on, as text (for LOG_DIR's file).
    func text(from offset: Int) -> String {
        withBytes { String(decoding: UnsafeBufferPointer(rebasing: $0[min(offset, $0.count)...]), as: UTF8.self) }
    }

    var length: Int { spill?.count ?? count }

    mutating func append(byte: UInt8) {
        if spill == nil && count < buffer.count {
            buffer[count] = byte
            count += 1
        } else {
            spillOver()
            spill!.append(byte)
        }
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        append(bytes, mayHoldLineFeeds: true)
    }

    /// Appends `bytes`; a line feed among them becomes a space (text known to hold none,
    /// such as this file's literals and numbers, skips the scan).
    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>, mayHoldLineFeeds: Bool) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        if spill == nil && count + bytes.count <= buffer.count {
            (buffer.baseAddress! + count).update(from: base, count: bytes.count)
            var i = count
            count += bytes.count
            guard mayHoldLineFeeds else { return }
            while let lf = memchr(buffer.baseAddress! + i, 10, count - i) {
                let at = UnsafeMutableRawPointer(buffer.baseAddress!).distance(to: lf)
                buffer[at] = 32
                i = at + 1
            }
        } else {
            spillOver()
            for byte in bytes { spill!.append(byte == 10 ? 32 : byte) }
        }
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append($0) }
    }

    mutating func append(_ text: Substring) {
        var text = text
        text.withUTF8 { append($0) }
    }

    /// A literal of poold's own (no line feed in it).
    mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount), mayHoldLineFeeds: false)
    }

    mutating func append(_ value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: any Int in decimal
        withUnsafeMutableBytes(of: &digits) { raw in
            var n = value.magnitude
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            if value < 0 {
                i -= 1
                raw[i] = UInt8(ascii: "-")
            }
            append(UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[i...]), mayHoldLineFeeds: false)
        }
    }

    private mutating func spillOver() {
        guard spill == nil else { return }
        var heap = [UInt8]()
        heap.reserveCapacity(count * 2 + 64)
        heap.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<count]))
        spill = heap
    }
}
