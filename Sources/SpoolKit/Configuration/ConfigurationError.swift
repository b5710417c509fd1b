// What goes wrong in a site configuration. Every error names the file and, when one line
// is at fault, that line, so `poolctl check` and poold's refusal to start point the
// operator at the exact place to fix ("poold.cfg:12: MAXBSMTP: '0' is not …").

public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var file: String
    /// nil when the fault is not tied to a line (missing SPOOL_DIR, unreadable file).
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// A fault in one value before it is placed; the caller adds the file, the line and the
/// key, so the value parsers stay free of where their text came from.
struct ConfigurationFault: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
