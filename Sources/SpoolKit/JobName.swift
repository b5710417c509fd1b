// Job file names (MISSION.md, "The spool"): `<pool><id>.MAIL`. The first character names
// the pool (A–Z, or `-` for the default pool); a name that starts with anything else
// belongs to the default pool and its whole stem is the id. The spool id is the id's
// digits when the id is all digits, and nothing otherwise ("free for all").

public struct JobName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let suffix = ".MAIL"

    /// The file name, e.g. `A00012345.MAIL`.
    public let fileName: String
    public let pool: Pool
    /// The id part of the stem (`00012345`).
    public let id: Substring
    /// The numeric spool id, when the id is all digits (at most 18 of them).
    public let spoolID: UInt64?

    /// Nil when the name is not a job's: no `.MAIL` suffix, empty stem, a `/`, or a hidden name.
    public init?(_ fileName: String) {
        guard fileName.hasSuffix(JobName.suffix), !fileName.hasPrefix("."),
              !fileName.contains("/"), fileName.utf8.count > JobName.suffix.utf8.count else { return nil }
        let stem = fileName.dropLast(JobName.suffix.count)
        let first = stem.utf8.first!
        let isPoolLetter = (first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z")) || first == UInt8(ascii: "-")
        self.fileName = fileName
        if isPoolLetter {
            pool = Pool(byte: first)!
            id = stem.dropFirst()
        } else {
            pool = .default
            id = stem
        }
        let digits = id.utf8
        if !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            spoolID = UInt64(id)
        } else {
            spoolID = nil
        }
    }

    public var description: String { fileName }
    public static func < (a: JobName, b: JobName) -> Bool { a.fileName < b.fileName }
}
