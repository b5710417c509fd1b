// Job file names (MISSION.md, "The spool"): `<pool><id>.MAIL`. The first character names
// the pool (A–Z, or `-` for the default pool); a name that starts with anything else
// belongs to the default pool and its whole stem is the id. The spool id is the id's
// digits when the id is all digits, and nothing otherwise ("free for all").
// A name is only its file name (16 bytes, and no allocation for names of up to 15 bytes
// such as `A00012345.MAIL`): the daemon holds one per queued job, so the pool and the ids
// are read from it when asked, not stored beside it.

public struct JobName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let suffix = ".MAIL"

    /// The file name, e.g. `A00012345.MAIL`.
    public let fileName: String

    /// Nil when the name is not a job's: no `.MAIL` suffix, empty stem, a `/`, or a hidden name.
    public init?(_ fileName: String) {
        var name = fileName
        let valid = name.withUTF8 { JobName.isJobName($0) }
        guard valid else { return nil }
        self.fileName = name
    }

    /// A name from a directory listing's bytes (no string is built for other names).
    public init?(bytes: UnsafeBufferPointer<UInt8>) {
        guard JobName.isJobName(bytes) else { return nil }
        fileName = String(decoding: bytes, as: UTF8.self)
    }

    static func isJobName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n > 5, bytes[0] != UInt8(ascii: "."),
              bytes[n - 5] == UInt8(ascii: "."), bytes[n - 4] == UInt8(ascii: "M"), bytes[n - 3] == UInt8(ascii: "A"),
              bytes[n - 2] == UInt8(ascii: "I"), bytes[n - 1] == UInt8(ascii: "L") else { return false }
        return !bytes.contains(UInt8(ascii: "/"))
    }

    private var hasPoolLetter: Bool {
        let first = fileName.utf8.first!
        return (first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z")) || first == UInt8(ascii: "-")
    }

    public var pool: Pool { hasPoolLetter ? Pool(unchecked: fileName.utf8.first!) : .default }

    /// The id part of the stem (`00012345`).
    public var id: Substring {
        let stem = fileName.dropLast(JobName.suffix.count)
        return hasPoolLetter ? stem.dropFirst() : stem
    }

    /// The numeric spool id, when the id is all digits (at most 18 of them).
    public var spoolID: UInt64? {
        var name = fileName
        let skip = hasPoolLetter ? 1 : 0
        return name.withUTF8 { bytes -> UInt64? in
            let digits = UnsafeBufferPointer(rebasing: bytes[skip..<(bytes.count - JobName.suffix.utf8.count)])
            guard !digits.isEmpty, digits.count <= 18 else { return nil }
            var value: UInt64 = 0
            for d in digits {
                guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + UInt64(d - UInt8(ascii: "0"))
            }
            return value
        }
    }

    public var description: String { fileName }
    public static func < (a: JobName, b: JobName) -> Bool { a.fileName < b.fileName }
}
