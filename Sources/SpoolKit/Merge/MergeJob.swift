// What the check pass of a mail-merge job (MISSION.md, "Mail-merge jobs") learns and keeps:
// the envelope, the table's header, how many rows and where they lie in the file, a sparse
// index to reach any row quickly, and the compiled template. The table itself is never
// held: rows are read back from the file when they are sent (`MergeRowReader`).
// Invariant: a `MergeJob` exists only for a file that passed the whole check, so every row
// has as many fields as the header, a sendable address and a sendable rendered sender.

public struct MergeJob: Sendable {
    public var parameters: MergeParameters
    /// The sender template between the angle brackets of `MAIL FROM:<…>`, as written.
    public var sender: String
    /// ESMTP parameters of the MAIL FROM line (`BODY=8BITMIME`), sent as written.
    public var senderParameters: [String]
    /// The header row's names, as written.
    public var columns: [String]
    /// The column holding each row's recipient (`EMAIL` or `*TO`).
    public var addressColumn: Int
    /// Data rows (the header not counted).
    public var rowCount: Int
    /// The line of the header row; data row i (0-based) is on line `headerLine + 1 + i`.
    public var headerLine: Int
    /// The header line in the file, dot-stuffed as written, line end included.
    public var headerRange: Range<Int64>
    /// From the first data row to the table's final `.` line (exclusive), as written.
    public var rowsRange: Range<Int64>
    /// The template's lines as written (dot-stuffed), up to its final `.` line (exclusive).
    public var templateRange: Range<Int64>
    /// The line of the template's first line (the one after DATA).
    public var templateLine: Int
    public var template: MergeTemplate
    public var rowIndex: RowIndex
    public var fileSize: Int64

    /// The number `&*ROW;` gives the first data row (FIRSTROW=, else 1).
    public var firstRowNumber: Int { parameters.firstRow ?? 1 }
    /// `&*ROW;` of every row in this job.
    public var rowNumbers: ClosedRange<Int> { firstRowNumber...(firstRowNumber + rowCount - 1) }
    /// The rendered sender is the null sender only when the template is `<>` itself.
    public var isNullSender: Bool { sender.isEmpty }
}

/// The optional parameters of the `MERGE` line, which a Distribute share carries so that it
/// renders exactly as the primary would (MISSION.md, "Distribute workers").
public struct MergeParameters: Sendable, Equatable {
    /// `STEM=`: the stem `&*MSGID;` uses instead of this file's own.
    public var stem: String?
    /// `FIRSTROW=`: the row number (`&*ROW;`) of the first data row.
    public var firstRow: Int?
    /// `HELO=`: the name `&*MSGID;` uses instead of the local HELO_NAME.
    public var heloName: String?
    /// `SHARE=i/n`: this job is share i of n of a distributed job; never distributed again.
    public var share: Share?

    public struct Share: Sendable, Equatable {
        public var index: Int
        public var count: Int
        public init(index: Int, count: Int) {
            self.index = index
            self.count = count
        }
    }

    public init(stem: String? = nil, firstRow: Int? = nil, heloName: String? = nil, share: Share? = nil) {
        self.stem = stem
        self.firstRow = firstRow
        self.heloName = heloName
        self.share = share
    }

    /// The largest FIRSTROW accepted (row numbers stay far from overflow).
    public static let maxFirstRow = 1_000_000_000_000
    /// The most shares a job may be split into.
    public static let maxShares = 10_000
    /// The longest STEM= value (a job file name's stem).
    public static let maxStemLength = 200

    /// The `MERGE` line's text after the word itself: ` STEM=A123 FIRSTROW=1001 …`.
    public var lineArguments: String {
        var words: [String] = []
        if let stem { words.append("STEM=\(stem)") }
        if let firstRow { words.append("FIRSTROW=\(firstRow)") }
        if let heloName { words.append("HELO=\(heloName)") }
        if let share { words.append("SHARE=\(share.index)/\(share.count)") }
        return words.map { " " + $0 }.joined()
    }
}

/// Why a merge job is invalid, and where: the line, and for a table error the row
/// (1 = the first row after the header, whatever FIRSTROW says).
public struct MergeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var row: Int?
    public var message: String

    public init(line: Int, row: Int? = nil, _ message: String) {
        self.line = line
        self.row = row
        self.message = message
    }

    /// `line 7 (row 5): 3 fields, the header has 4`: what `bad/<name>.why` says.
    public var description: String {
        if let row { return "line \(line) (row \(row)): \(message)" }
        return "line \(line): \(message)"
    }
}

/// The byte offset of every `stride`-th data row, so that a worker can start reading at any
/// row after reading at most `stride - 1` rows. When the index would outgrow
/// `maxEntries`, it keeps every other entry and doubles its stride: its memory is bounded
/// whatever the table's size.
public struct RowIndex: Sendable, Equatable {
    public static let initialStride = 64
    public static let maxEntries = 65_536

    public private(set) var stride = RowIndex.initialStride
    /// `offsets[k]` is where data row `k * stride` (0-based) starts in the file.
    public private(set) var offsets: [Int64] = []

    public init() {}

    /// Called for every data row in order (`index` 0, 1, 2, …).
    mutating func note(row index: Int, at offset: Int64) {
        guard index % stride == 0 else { return }
        if offsets.count == RowIndex.maxEntries {
            offsets = Swift.stride(from: 0, to: offsets.count, by: 2).map { offsets[$0] }
            stride *= 2
            guard index % stride == 0 else { return }
        }
        offsets.append(offset)
    }

    /// The indexed row at or before `index`: its index and file offset.
    func entry(atOrBefore index: Int) -> (index: Int, offset: Int64)? {
        guard !offsets.isEmpty, index >= 0 else { return nil }
        let k = min(index / stride, offsets.count - 1)
        return (k * stride, offsets[k])
    }
}
