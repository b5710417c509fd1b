// One row of a merge job's table, and the RFC 4180 rules that cut a line into fields:
// comma-separated, a field may be quoted with `"` (then `""` is a quote and commas are
// literal), no line break inside a field, no CR or NUL in a value, a quote never inside an
// unquoted field. A row's fields live in one byte buffer that is reused from row to row,
// so reading a million rows allocates nothing after the first.

public struct MergeRow: Sendable {
    /// 0-based position in the table (0 = the first row after the header).
    public internal(set) var index = -1
    /// The row's number as `&*ROW;` renders it (FIRSTROW-based).
    public internal(set) var number = 0
    /// The job file's line holding the row.
    public internal(set) var line = 0
    /// The row's line in the file as written (dot-stuffed, line end included).
    public internal(set) var fileRange: Range<Int64> = 0..<0
    /// The fields' bytes, one after the other, quoting undone.
    var storage: [UInt8] = []
    /// `ends[i]`: where field i ends in `storage`.
    var ends: [Int] = []

    public init() {}

    public var fieldCount: Int { ends.count }

    /// Field `i` (0-based) with quoting undone.
    public func field(_ i: Int) -> ArraySlice<UInt8> {
        storage[(i == 0 ? 0 : ends[i - 1])..<ends[i]]
    }

    /// Field `i` as text (allocates: not for the sending path).
    public func text(_ i: Int) -> String { String(decoding: field(i), as: UTF8.self) }

    /// Cuts `line` (one CSV line: no LF, dot-stuffing and a final CR already removed) into
    /// fields. Returns what is wrong, or nil.
    mutating func parse(_ line: UnsafeRawBufferPointer, maxFields: Int) -> CSVFault? {
        storage.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        let n = line.count
        var i = 0
        while true {
            if ends.count == maxFields { return CSVFault(field: ends.count + 1, "more than \(maxFields) fields") }
            let field = ends.count + 1
            if i < n && line[i] == UInt8(ascii: "\"") {
                i += 1
                while true {
                    guard i < n else { return CSVFault(field: field, "a quoted field is not closed on its line (no line breaks inside a field)") }
                    let b = line[i]
                    if b == UInt8(ascii: "\"") {
                        if i + 1 < n && line[i + 1] == UInt8(ascii: "\"") {
                            storage.append(b)
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    if let fault = CSVFault.check(b, field: field) { return fault }
                    storage.append(b)
                    i += 1
                }
                ends.append(storage.count)
                if i == n { return nil }
                guard line[i] == UInt8(ascii: ",") else {
                    return CSVFault(field: field, "text after the closing quote of a quoted field")
                }
                i += 1
            } else {
                let start = i
                while i < n {
                    let b = line[i]
                    if b == UInt8(ascii: ",") { break }
                    if b == UInt8(ascii: "\"") {
                        return CSVFault(field: field, "a quote inside an unquoted field (quote the whole field and double the quote)")
                    }
                    if let fault = CSVFault.check(b, field: field) { return fault }
                    i += 1
                }
                if i > start {
                    storage.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[start..<i]).assumingMemoryBound(to: UInt8.self))
                }
                ends.append(storage.count)
                if i == n { return nil }
                i += 1
            }
        }
    }
}

/// What is wrong with one CSV line, and in which field (1-based).
struct CSVFault: Equatable {
    var field: Int
    var message: String
    init(field: Int, _ message: String) {
        self.field = field
        self.message = message
    }

    @inline(__always)
    static func check(_ b: UInt8, field: Int) -> CSVFault? {
        if b == 13 { return CSVFault(field: field, "a CR in a value") }
        if b == 0 { return CSVFault(field: field, "a NUL byte in a value") }
        return nil
    }
}

/// The address rules of `EnvelopeSyntax`, applied to bytes without allocating for the
/// ordinary address; anything unusual gets `EnvelopeSyntax`'s own verdict and words.
enum MergeAddress {
    static func problem(_ bytes: UnsafeRawBufferPointer, allowNull: Bool) -> String? {
        if isPlainlyValid(bytes) { return nil }
        guard let text = String(validating: bytes, as: UTF8.self) else { return "address is not valid UTF-8" }
        return EnvelopeSyntax.problem(address: text, allowNull: allowNull)
    }

    /// True only for an address `EnvelopeSyntax` certainly accepts: printable ASCII
    /// without angle brackets, `local@domain` with a domain that neither starts nor ends
    /// with a dot, at most 254 bytes. (The fuzzer checks that the two agree.)
    static func isPlainlyValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        guard n > 0, n <= EnvelopeSyntax.maxAddressLength else { return false }
        var at = -1
        for i in 0..<n {
            let b = bytes[i]
            guard b > 32, b < 127, b != UInt8(ascii: "<"), b != UInt8(ascii: ">") else { return false }
            if b == UInt8(ascii: "@") { at = i }
        }
        guard at > 0, at < n - 1 else { return false }
        return bytes[at + 1] != UInt8(ascii: ".") && bytes[n - 1] != UInt8(ascii: ".")
    }
}
