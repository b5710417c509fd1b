// Renders one row of a merge job: the sender, the recipient and the message, byte-exact to
// the contract. Values are copied in as they are and never scanned again; a rendered line
// that starts with a dot is stuffed on the wire like any other. Everything is written into
// buffers the caller passes back in for the next row, so the sending path allocates nothing
// per row once the buffers have grown to the largest message. The sender and the address
// are checked again here (the file could have changed since the check pass): an invalid
// one is a `MergeError` for that row, never bytes on the wire.

import Foundation

/// One row's transaction as rendered: reuse it from row to row.
public struct RenderedMessage: Sendable {
    /// The message with dot-stuffing undone and every line ending in CRLF.
    public internal(set) var bytes: [UInt8] = []
    /// Where each line that starts with a dot begins in `bytes` (stuffed on the wire).
    var dotLines: [Int] = []
    public internal(set) var senderBytes: [UInt8] = []
    public internal(set) var recipientBytes: [UInt8] = []
    /// The row's `&*ROW;` number and its 0-based position in the table.
    public internal(set) var rowNumber = 0
    public internal(set) var rowIndex = -1

    public init() {}

    /// The rendered envelope sender (empty: the null sender).
    public var sender: String { String(decoding: senderBytes, as: UTF8.self) }
    public var recipient: String { String(decoding: recipientBytes, as: UTF8.self) }
    /// The size on the wire: dot-stuffed, CRLF line ends, without the final `.` line.
    public var wireSize: Int64 { Int64(bytes.count + dotLines.count) }
    /// The size with dot-stuffing undone (what BDAT announces).
    public var unstuffedSize: Int64? { Int64(bytes.count) }

    /// Calls `sink` with the wire form (dot-stuffed, without the final dot), exactly
    /// `wireSize` bytes: the whole message in one piece unless some line starts with a dot.
    public func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { raw in
            var start = 0
            for line in dotLines {
                if line > start { try sink(UnsafeRawBufferPointer(rebasing: raw[start..<line])) }
                try MergeRenderer.stuffingDot.withUnsafeBytes { try sink($0) }
                start = line
            }
            if start < raw.count || dotLines.isEmpty { try sink(UnsafeRawBufferPointer(rebasing: raw[start...])) }
        }
    }

    /// The wire form in one array (tests, `poolctl preview`).
    public var wireBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(wireSize))
        try? stream { out.append(contentsOf: $0) }
        return out
    }
}

public struct MergeRenderer: Sendable {
    static let stuffingDot: [UInt8] = [UInt8(ascii: ".")]

    public let job: MergeJob
    private let stem: [UInt8]
    private let heloName: [UInt8]
    private let clock: @Sendable () -> Date
    private let zone: TimeZone
    private var dateSecond = Int64.min
    private var date: [UInt8] = []
    private var system = SystemFieldValues()

    /// `stem`: the job file's name without `.MAIL`; `heloName`: the local HELO_NAME. A
    /// share's `STEM=` and `HELO=` take their place. `clock` gives `&*DATE;`.
    public init(job: MergeJob, stem: String, heloName: String,
                clock: @escaping @Sendable () -> Date = { Date() }, timeZone: TimeZone = .current) {
        self.job = job
        self.stem = Array((job.parameters.stem ?? stem).utf8)
        self.heloName = Array((job.parameters.heloName ?? heloName).utf8)
        self.clock = clock
        self.zone = timeZone
    }

    /// The same for the job file `name` (its stem is the name without `.MAIL`).
    public init(job: MergeJob, name: JobName, heloName: String,
                clock: @escaping @Sendable () -> Date = { Date() }, timeZone: TimeZone = .current) {
        self.init(job: job, stem: String(name.fileName.dropLast(JobName.suffix.count)), heloName: heloName, clock: clock, timeZone: timeZone)
    }

    /// Renders `row` into `message` (its buffers are reused). Throws `MergeError` when the
    /// row's address or rendered sender cannot be sent.
    public mutating func render(_ row: MergeRow, into message: inout RenderedMessage) throws(MergeError) {
        let template = job.template
        if template.uses(.date) {
            let now = clock()
            let second = Int64(now.timeIntervalSince1970.rounded(.down))
            if second != dateSecond {
                date = MessageDate.format(now, in: zone)
                dateSecond = second
            }
        }
        guard row.fieldCount == job.columns.count else {
            throw MergeError(line: row.line, row: row.index + 1, "\(row.fieldCount) fields, the header has \(job.columns.count) (the job changed since it was checked)")
        }
        system.fill(row, addressColumn: job.addressColumn, template: template, stem: stem, heloName: heloName)
        message.bytes.removeAll(keepingCapacity: true)
        message.dotLines.removeAll(keepingCapacity: true)
        message.senderBytes.removeAll(keepingCapacity: true)
        message.recipientBytes.removeAll(keepingCapacity: true)
        message.rowNumber = row.number
        message.rowIndex = row.index
        let problem: String? = MergeRenderer.withValues(of: row, addressColumn: job.addressColumn, system: system,
                                                        date: date, literals: template.literals) { values, literals in
            let address = values.value(.address)
            if let problem = MergeAddress.problem(address, allowNull: false) {
                return "address <\(String(decoding: address, as: UTF8.self))>: \(problem)"
            }
            message.recipientBytes.append(contentsOf: address.assumingMemoryBound(to: UInt8.self))
            template.run(template.sender, literals: literals, values: values, into: &message.senderBytes, dotLines: nil)
            if let problem = message.senderBytes.withUnsafeBytes({ MergeAddress.problem($0, allowNull: template.sender.isEmpty) }) {
                return "the rendered sender <\(message.sender)> is not an address: \(problem)"
            }
            template.run(template.message, literals: literals, values: values, into: &message.bytes, dotLines: &message.dotLines)
            return nil
        }
        if let problem { throw MergeError(line: row.line, row: row.index + 1, problem) }
    }
}

extension MergeRenderer {
    /// Calls `body` with a view of the row's values and the template's literal bytes.
    static func withValues<R>(of row: MergeRow, addressColumn: Int, system: SystemFieldValues, date: [UInt8],
                              literals: [UInt8], _ body: (RowValues, UnsafeRawBufferPointer) -> R) -> R {
        row.storage.withUnsafeBytes { storage in
            row.ends.withUnsafeBufferPointer { ends in
                system.bytes.withUnsafeBytes { systemBytes in
                    date.withUnsafeBytes { dateBytes in
                        literals.withUnsafeBytes { literals in
                            body(RowValues(storage: storage, ends: ends, addressColumn: addressColumn,
                                           system: systemBytes, ranges: system, date: dateBytes), literals)
                        }
                    }
                }
            }
        }
    }
}

extension MergeTemplate {
    /// Runs `steps` for one row, appending to `out`; with `dotLines`, notes where each line
    /// that starts with a dot begins.
    func run(_ steps: [Step], literals: UnsafeRawBufferPointer, values: RowValues,
             into out: inout [UInt8], dotLines: UnsafeMutablePointer<[Int]>?) {
        var lineStart = out.count
        var pc = 0
        let count = steps.count
        while pc < count {
            switch steps[pc] {
            case .text(let start, let end):
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: literals[start..<end]).assumingMemoryBound(to: UInt8.self))
            case .field(let field):
                out.append(contentsOf: values.value(field).assumingMemoryBound(to: UInt8.self))
            case .lineEnd:
                if out.count > lineStart, out[lineStart] == UInt8(ascii: "."), let dotLines { dotLines.pointee.append(lineStart) }
                out.append(13)
                out.append(10)
                lineStart = out.count
            case .branch(let condition, let otherwise):
                if !conditions[condition].isTrue(values) {
                    pc = otherwise
                    continue
                }
            case .jump(let target):
                pc = target
                continue
            }
            pc += 1
        }
    }
}

/// The system fields of one row that the template uses, in one reused buffer.
struct SystemFieldValues {
    var bytes: [UInt8] = []
    var verp = 0..<0
    var row = 0..<0
    var messageID = 0..<0

    mutating func fill(_ row: MergeRow, addressColumn: Int, template: MergeTemplate, stem: [UInt8], heloName: [UInt8]) {
        bytes.removeAll(keepingCapacity: true)
        if template.uses(.verp) {
            let address = row.field(addressColumn)
            let start = bytes.count
            bytes.append(contentsOf: address)
            if let at = address.lastIndex(of: UInt8(ascii: "@")) { bytes[start + (at - address.startIndex)] = UInt8(ascii: "=") }
            verp = start..<bytes.count
        }
        if template.uses(.row) || template.uses(.messageID) {
            let start = bytes.count
            appendDecimal(row.number)
            self.row = start..<bytes.count
        }
        if template.uses(.messageID) {
            let start = bytes.count
            bytes.append(contentsOf: stem)
            bytes.append(UInt8(ascii: "."))
            appendDecimal(row.number)
            bytes.append(UInt8(ascii: "@"))
            bytes.append(contentsOf: heloName)
            messageID = start..<bytes.count
        }
    }

    private mutating func appendDecimal(_ n: Int) {
        var value = n
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            value = -value
        }
        let start = bytes.count
        repeat {
            bytes.append(UInt8(48 + value % 10))
            value /= 10
        } while value > 0
        bytes[start...].reverse()
    }
}

/// One row's values as the steps and conditions read them: columns from the row's buffer,
/// system fields from the scratch buffer.
struct RowValues: FieldValues {
    let storage: UnsafeRawBufferPointer
    let ends: UnsafeBufferPointer<Int>
    let addressColumn: Int
    let system: UnsafeRawBufferPointer
    let ranges: SystemFieldValues
    let date: UnsafeRawBufferPointer

    @inline(__always)
    func value(_ field: MergeField) -> UnsafeRawBufferPointer {
        switch field {
        case .column(let i): return column(i)
        case .address: return column(addressColumn)
        case .verp: return UnsafeRawBufferPointer(rebasing: system[ranges.verp])
        case .row: return UnsafeRawBufferPointer(rebasing: system[ranges.row])
        case .messageID: return UnsafeRawBufferPointer(rebasing: system[ranges.messageID])
        case .date: return date
        }
    }

    @inline(__always)
    private func column(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[(i == 0 ? 0 : ends[i - 1])..<ends[i]])
    }
}
