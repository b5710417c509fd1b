// Checks a mail-merge job whole, in one streaming pass, before any row is sent:
//   [HELO|EHLO …]  MERGE [STEM= FIRSTROW= HELO= SHARE=]  MAIL FROM:<sender template> [params]
//   TABLE  header row  data rows (CSV, dot-stuffed)  .  DATA  template (dot-stuffed)  .  [QUIT]
// Lines end in LF or CRLF; blank lines between commands are ignored. Every row is checked
// (field count, address, the sender it renders) and then forgotten: memory is the line
// buffer, the sparse row index and the template (at most `MergeTemplate.maxSize`),
// whatever the table's size. The first fault ends the pass with a `MergeError` naming its
// line (and row).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum MergeReader {
    /// The longest table row or template line accepted, line end included.
    public static let maxLineLength = 1024 * 1024
    /// The most columns a table may have.
    public static let maxColumns = 1000

    /// Reads and checks the merge job at `path`. Throws `MergeError` for a bad job and
    /// `SystemError` when it cannot be read.
    public static func read(path: String) throws -> MergeJob {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        return try read(.file(fd), size: try fd.status().size)
    }

    /// Checks a job held in memory (tests, fuzzing, `poolctl`).
    public static func parse(_ bytes: [UInt8]) throws -> MergeJob {
        try read(.memory(bytes), size: Int64(bytes.count))
    }

    public static func read(_ source: JobBytes, size: Int64) throws -> MergeJob {
        var check = MergeCheck(fileSize: size)
        let scanner = LineScanner(source: source, end: size, maxLineLength: maxLineLength)
        while let line = try scanner.next() { try check.take(line) }
        return try check.finish(lastLine: max(scanner.nextLineNumber - 1, 1))
    }
}

struct MergeCheck {
    enum Section { case start, afterHello, afterMerge, afterSender, header, rows, afterTable, template, afterTemplate, afterQuit }

    let fileSize: Int64
    var section = Section.start
    var parameters = MergeParameters()
    var sender: [UInt8] = []
    var senderParameters: [String] = []
    var senderLine = 0
    /// The sender has no `&NAME;`: checked once on its line, not per row.
    var senderIsFixed = true
    var tableLine = 0
    var dataLine = 0
    var columns: [String] = []
    var addressColumn = 0
    var compiler = TemplateCompiler(columns: [])
    var headerLine = 0
    var headerRange: Range<Int64> = 0..<0
    var rowsStart: Int64 = 0
    var rowsEnd: Int64 = 0
    var templateStart: Int64 = 0
    var templateEnd: Int64 = 0
    var template: MergeTemplate?
    var rowCount = 0
    var index = RowIndex()
    var row = MergeRow()
    var system = SystemFieldValues()
    var renderedSender: [UInt8] = []

    init(fileSize: Int64) { self.fileSize = fileSize }

    mutating func take(_ line: ScannedLine) throws(MergeError) {
        switch section {
        case .header, .rows: try tableLine(line)
        case .template: try templateLine(line)
        default: try commandLine(line)
        }
    }

    // MARK: command lines

    private mutating func commandLine(_ line: ScannedLine) throws(MergeError) {
        var text = line.content
        while let last = text.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            text = UnsafeRawBufferPointer(rebasing: text.dropLast())
        }
        if text.isEmpty { return }
        let n = line.number
        guard line.terminated else { throw MergeError(line: n, "the file ends in the middle of a line (truncated?)") }
        if line.bytes.count > BSMTPReader.maxEnvelopeLineLength {
            throw MergeError(line: n, "command line longer than \(BSMTPReader.maxEnvelopeLineLength) bytes")
        }
        if text.contains(0) { throw MergeError(line: n, "NUL byte in a command line") }
        if text.contains(13) { throw MergeError(line: n, "CR inside a command line") }
        let word = String(decoding: TemplateCompiler.upper(text.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }), as: UTF8.self)
        let isMailFrom = TemplateCompiler.upper(text.prefix(10)) == Array("MAIL FROM:".utf8)
        switch section {
        case .start where word == "HELO" || word == "EHLO":
            section = .afterHello
        case .start, .afterHello:
            guard word == "MERGE" else { throw MergeError(line: n, "a merge job begins with a MERGE line (after an optional HELO)") }
            parameters = try MergeCheck.parameters(text.dropFirst(5), line: n)
            section = .afterMerge
        case .afterMerge:
            guard isMailFrom else { throw MergeError(line: n, "expected MAIL FROM:<sender> after MERGE") }
            try mailFrom(Array(text.dropFirst(10)), line: n)
            section = .afterSender
        case .afterSender:
            if word == "RCPT" { throw MergeError(line: n, "RCPT TO has no place in a merge job (the table's EMAIL column names the recipients)") }
            guard word == "TABLE" else { throw MergeError(line: n, "expected TABLE after MAIL FROM") }
            guard text.count == 5 else { throw MergeError(line: n, "TABLE takes no argument") }
            tableLine = n
            section = .header
        case .afterTable:
            guard word == "DATA" else { throw MergeError(line: n, "expected DATA (the template) after the table") }
            guard text.count == 4 else { throw MergeError(line: n, "DATA takes no argument") }
            dataLine = n
            templateStart = line.offset + Int64(line.bytes.count) + 1
            section = .template
        case .afterTemplate where word == "QUIT" && text.count == 4:
            section = .afterQuit
        case .afterTemplate:
            throw MergeError(line: n, "text after the template's final '.' (a merge job holds one template; only QUIT may follow)")
        case .afterQuit:
            throw MergeError(line: n, "text after QUIT")
        case .header, .rows, .template:
            preconditionFailure("table and template lines are not command lines")
        }
    }

    /// `MAIL FROM:` already removed: ` <template> [params]`.
    private mutating func mailFrom(_ rest: [UInt8], line: Int) throws(MergeError) {
        var i = 0
        while i < rest.count && rest[i] == UInt8(ascii: " ") { i += 1 }
        guard i < rest.count, rest[i] == UInt8(ascii: "<") else { throw MergeError(line: line, "the sender must be written <like@this>") }
        guard let close = rest[i...].firstIndex(of: UInt8(ascii: ">")) else { throw MergeError(line: line, "the sender has no closing '>'") }
        sender = Array(rest[(i + 1)..<close])
        for b in sender where b <= 32 || b == 127 || b == UInt8(ascii: "<") {
            throw MergeError(line: line, "the sender holds a space, a control character or '<'")
        }
        let after = rest[(close + 1)...]
        if let first = after.first, first != UInt8(ascii: " ") { throw MergeError(line: line, "text right after the sender's closing '>'") }
        for token in after.split(separator: UInt8(ascii: " ")) {
            let parameter = String(decoding: token, as: UTF8.self)
            if let problem = EnvelopeSyntax.problem(parameter: parameter) { throw MergeError(line: line, problem) }
            senderParameters.append(parameter)
        }
        senderLine = line
    }

    static func parameters(_ text: Slice<UnsafeRawBufferPointer>, line: Int) throws(MergeError) -> MergeParameters {
        guard text.isEmpty || text.first == UInt8(ascii: " ") || text.first == UInt8(ascii: "\t") else {
            throw MergeError(line: line, "a merge job begins with a MERGE line (after an optional HELO)")
        }
        var parameters = MergeParameters()
        var seen: Set<String> = []
        for token in String(decoding: text, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            guard let eq = token.firstIndex(of: "=") else { throw MergeError(line: line, "MERGE parameter '\(token)' is not KEY=VALUE") }
            let key = token[..<eq].uppercased()
            let value = token[token.index(after: eq)...]
            guard seen.insert(key).inserted else { throw MergeError(line: line, "MERGE parameter \(key)= given twice") }
            guard !value.isEmpty else { throw MergeError(line: line, "MERGE parameter \(key)= has no value") }
            switch key {
            case "STEM":
                guard value.utf8.count <= MergeParameters.maxStemLength,
                      value.utf8.allSatisfy({ MergeField.isNameByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "=") }) else {
                    throw MergeError(line: line, "STEM=\(value) is not a job stem (letters, digits, '-', '_', '.', '+', '=')")
                }
                parameters.stem = String(value)
            case "FIRSTROW":
                guard value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(value), n >= 1, n <= MergeParameters.maxFirstRow else {
                    throw MergeError(line: line, "FIRSTROW=\(value) is not a row number 1...\(MergeParameters.maxFirstRow)")
                }
                parameters.firstRow = n
            case "HELO":
                do { try RelayHostSyntax.checkHeloName(value) } catch { throw MergeError(line: line, "HELO=: \(error.message)") }
                parameters.heloName = String(value)
            case "SHARE":
                let parts = value.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }),
                      let i = Int(parts[0]), let count = Int(parts[1]), i >= 1, i <= count, count <= MergeParameters.maxShares else {
                    throw MergeError(line: line, "SHARE=\(value) is not i/n with 1 <= i <= n <= \(MergeParameters.maxShares)")
                }
                parameters.share = .init(index: i, count: count)
            default:
                throw MergeError(line: line, "unknown MERGE parameter \(key)= (known: STEM=, FIRSTROW=, HELO=, SHARE=)")
            }
        }
        if parameters.share != nil && (parameters.stem == nil || parameters.firstRow == nil || parameters.heloName == nil) {
            throw MergeError(line: line, "SHARE= needs STEM=, FIRSTROW= and HELO= (a share renders as the primary would)")
        }
        return parameters
    }

    // MARK: the table

    private mutating func tableLine(_ line: ScannedLine) throws(MergeError) {
        guard line.terminated else {
            throw MergeError(line: line.number, "the file ends inside the table begun on line \(tableLine) (no final '.' line)")
        }
        var content = line.content
        if content.count == 1 && content[0] == UInt8(ascii: ".") {
            if section == .header { throw MergeError(line: line.number, "the table has no header row") }
            if rowCount == 0 { throw MergeError(line: line.number, "the table has no rows after its header") }
            rowsEnd = line.offset
            section = .afterTable
            return
        }
        if content.first == UInt8(ascii: ".") { content = UnsafeRawBufferPointer(rebasing: content.dropFirst()) }
        if section == .header {
            try header(content, line: line.number)
            headerRange = line.offset..<(line.offset + Int64(line.bytes.count) + 1)
            rowsStart = headerRange.upperBound
            section = .rows
        } else {
            try dataRow(content, line: line)
        }
    }

    private mutating func header(_ content: UnsafeRawBufferPointer, line: Int) throws(MergeError) {
        if content.isEmpty { throw MergeError(line: line, "the header row is empty") }
        if content.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw MergeError(line: line, "the header begins with a UTF-8 byte order mark (remove it)")
        }
        if let fault = row.parse(content, maxFields: MergeReader.maxColumns) {
            throw MergeError(line: line, "header, field \(fault.field): \(fault.message)")
        }
        var names: [[UInt8]] = []
        var seen: Set<[UInt8]> = []
        var address: Int?
        for i in 0..<row.fieldCount {
            let name = Array(row.field(i))
            let upper = TemplateCompiler.upper(name)
            let isTo = upper == Array("*TO".utf8)
            guard isTo || (!name.isEmpty && name.allSatisfy(MergeField.isNameByte)) else {
                throw MergeError(line: line, "column name '\(MergeCheck.shown(name))' is not made of A-Z, a-z, 0-9, '_' and '-'")
            }
            guard seen.insert(upper).inserted else {
                throw MergeError(line: line, "column \(MergeCheck.shown(name)) appears twice (names are compared without regard to case)")
            }
            if isTo || upper == Array("EMAIL".utf8) {
                if let other = address {
                    throw MergeError(line: line, "two address columns, \(MergeCheck.shown(names[other])) and \(MergeCheck.shown(name))")
                }
                address = i
            }
            names.append(name)
        }
        guard let address else { throw MergeError(line: line, "no EMAIL (or *TO) column: the header must name the address column") }
        headerLine = line
        addressColumn = address
        columns = names.map { String(decoding: $0, as: UTF8.self) }
        compiler = TemplateCompiler(columns: names)
        do { try compiler.compileSender(sender) } catch { throw MergeError(line: senderLine, error.message) }
        senderIsFixed = !compiler.template.sender.contains { if case .field = $0 { true } else { false } }
        if senderIsFixed, let problem = sender.withUnsafeBytes({ MergeAddress.problem($0, allowNull: true) }) {
            throw MergeError(line: senderLine, "the sender <\(MergeCheck.shown(sender))>: \(problem)")
        }
    }

    private mutating func dataRow(_ content: UnsafeRawBufferPointer, line: ScannedLine) throws(MergeError) {
        let n = line.number
        let rowNumber = rowCount + 1
        if content.isEmpty { throw MergeError(line: n, row: rowNumber, "empty row") }
        if let fault = row.parse(content, maxFields: MergeReader.maxColumns) {
            let column = fault.field <= columns.count ? "column \(columns[fault.field - 1])" : "field \(fault.field)"
            throw MergeError(line: n, row: rowNumber, "\(column): \(fault.message)")
        }
        if row.fieldCount != columns.count {
            throw MergeError(line: n, row: rowNumber, "\(row.fieldCount) field\(row.fieldCount == 1 ? "" : "s"), the header has \(columns.count)")
        }
        let problem: String? = row.storage.withUnsafeBytes { storage in
            let address = UnsafeRawBufferPointer(rebasing: storage[(addressColumn == 0 ? 0 : row.ends[addressColumn - 1])..<row.ends[addressColumn]])
            return MergeAddress.problem(address, allowNull: false).map {
                "invalid address <\(MergeCheck.shown(Array(address)))> in column \(columns[addressColumn]): \($0)"
            }
        }
        if let problem { throw MergeError(line: n, row: rowNumber, problem) }
        if !senderIsFixed {
            row.number = (parameters.firstRow ?? 1) + rowCount
            system.fill(row, addressColumn: addressColumn, template: compiler.template, stem: [], heloName: [])
            renderedSender.removeAll(keepingCapacity: true)
            let template = compiler.template
            let senderProblem: String? = MergeRenderer.withValues(of: row, addressColumn: addressColumn, system: system,
                                                                   date: [], literals: template.literals) { values, literals in
                template.run(template.sender, literals: literals, values: values, into: &renderedSender, dotLines: nil)
                return renderedSender.withUnsafeBytes { MergeAddress.problem($0, allowNull: false) }
            }
            if let senderProblem {
                throw MergeError(line: n, row: rowNumber, "the sender renders as <\(MergeCheck.shown(renderedSender))>, not an address: \(senderProblem)")
            }
        }
        index.note(row: rowCount, at: line.offset)
        rowCount += 1
    }

    // MARK: the template

    private mutating func templateLine(_ line: ScannedLine) throws(MergeError) {
        guard line.terminated else {
            throw MergeError(line: line.number, "the file ends inside the template begun on line \(dataLine + 1) (no final '.' line)")
        }
        var content = line.content
        if content.count == 1 && content[0] == UInt8(ascii: ".") {
            templateEnd = line.offset
            template = try compiler.finish()
            section = .afterTemplate
            return
        }
        if content.contains(0) { throw MergeError(line: line.number, "NUL byte in the template") }
        if content.first == UInt8(ascii: ".") { content = UnsafeRawBufferPointer(rebasing: content.dropFirst()) }
        try compiler.add(line: content, number: line.number)
    }

    mutating func finish(lastLine: Int) throws(MergeError) -> MergeJob {
        switch section {
        case .start, .afterHello:
            throw MergeError(line: lastLine, fileSize == 0 ? "empty file" : "no MERGE line")
        case .afterMerge: throw MergeError(line: lastLine, "the file ends before MAIL FROM")
        case .afterSender: throw MergeError(line: lastLine, "the file ends before TABLE")
        case .header, .rows: throw MergeError(line: lastLine, "the file ends inside the table begun on line \(tableLine) (no final '.' line)")
        case .afterTable: throw MergeError(line: lastLine, "the file ends before DATA (no template)")
        case .template: throw MergeError(line: lastLine, "the file ends inside the template begun on line \(dataLine + 1) (no final '.' line)")
        case .afterTemplate, .afterQuit: break
        }
        guard let template else { preconditionFailure("a finished template section has a template") }
        return MergeJob(parameters: parameters, sender: String(decoding: sender, as: UTF8.self), senderParameters: senderParameters,
                        columns: columns, addressColumn: addressColumn, rowCount: rowCount, headerLine: headerLine,
                        headerRange: headerRange, rowsRange: rowsStart..<rowsEnd, templateRange: templateStart..<templateEnd,
                        templateLine: dataLine + 1, template: template, rowIndex: index, fileSize: fileSize)
    }

    /// Bytes for an error message: at most 80, control characters as '?'.
    static func shown(_ bytes: some Collection<UInt8>) -> String {
        let text = String(decoding: bytes.prefix(80).map { $0 < 32 || $0 == 127 ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
        return bytes.count > 80 ? text + "…" : text
    }
}
