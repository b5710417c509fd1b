// A merge job's template compiled once, when the job is checked, into a flat list of
// steps the renderer runs for every row: copy literal bytes, insert a field's value, end a
// line (CRLF), and branch on a `.BB` condition. Substitution: `&NAME;` where NAME is a
// column or a system field (`*TO`, `*VERP`, `*ROW`, `*MSGID`, `*DATE`), compared without
// regard to case; any other `&…;` stays as it is. Directive lines (after dot-stuffing is
// undone): `.BB condition`, `.ELSE`, `.EB` (any case, nestable) and `.*` comments; they
// never reach the message. The template is held whole: at most `maxSize` bytes.

public enum MergeField: Hashable, Sendable {
    case column(Int)
    /// `&*TO;`: the row's address.
    case address
    /// `&*VERP;`: the address as `local=domain`.
    case verp
    /// `&*ROW;`: the row number.
    case row
    /// `&*MSGID;`: `<stem>.<row>@<HELO>`.
    case messageID
    /// `&*DATE;`: the RFC 5322 date when the message is rendered.
    case date

    static let systemNames: [String: MergeField] = ["*TO": .address, "*VERP": .verp, "*ROW": .row, "*MSGID": .messageID, "*DATE": .date]

    /// `[A-Za-z0-9_-]`: the bytes of a column name.
    @inline(__always)
    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || ((b | 0x20) >= 97 && (b | 0x20) <= 122) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}

/// The values of one row, as the template's steps and conditions read them.
protocol FieldValues {
    func value(_ field: MergeField) -> UnsafeRawBufferPointer
}

public struct MergeTemplate: Sendable {
    /// The largest template accepted (its lines, dot-stuffing undone, line ends not counted).
    public static let maxSize = 10 * 1024 * 1024

    enum Step: Sendable, Equatable {
        /// Copy `literals[start..<end]`.
        case text(Int, Int)
        case field(MergeField)
        /// CRLF: the end of a message line.
        case lineEnd
        /// Go on when condition `c` holds, else jump to step `otherwise`.
        case branch(Int, otherwise: Int)
        case jump(Int)
    }

    var literals: [UInt8] = []
    var message: [Step] = []
    var sender: [Step] = []
    var conditions: [MergeCondition] = []
    /// Fields some step or condition reads (the renderer computes only these).
    var used: Set<MergeField> = []
    /// The template's size (its lines' bytes).
    public internal(set) var size = 0
    /// Lines that reach the message (before any condition is applied).
    public internal(set) var messageLines = 0
    /// `.BB` blocks in the template.
    public var blockCount: Int { conditions.count }

    func uses(_ field: MergeField) -> Bool { used.contains(field) }
}

/// Builds a `MergeTemplate` line by line as the check pass reads the template.
struct TemplateCompiler {
    private(set) var template = MergeTemplate()
    private var names: [[UInt8]: MergeField] = [:]
    /// Open blocks: the `.BB` step, the `.ELSE` jump once seen, the `.BB` line.
    private var blocks: [(branch: Int, jump: Int?, line: Int)] = []

    init(columns: [[UInt8]]) {
        for (i, name) in columns.enumerated() { names[TemplateCompiler.upper(name)] = .column(i) }
        for (name, field) in MergeField.systemNames where names[Array(name.utf8)] == nil {
            names[Array(name.utf8)] = field
        }
    }

    static func upper(_ name: some Collection<UInt8>) -> [UInt8] {
        name.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }
    }

    mutating func resolve(_ name: some Collection<UInt8>) -> MergeField? {
        guard let field = names[TemplateCompiler.upper(name)] else { return nil }
        template.used.insert(field)
        return field
    }

    /// The sender template (between the angle brackets of MAIL FROM); it may not use
    /// `&*DATE;` or `&*MSGID;`, which are not address material.
    mutating func compileSender(_ bytes: [UInt8]) throws(ConditionFault) {
        var steps: [MergeTemplate.Step] = []
        bytes.withUnsafeBytes { substitute($0, into: &steps) }
        for case .field(let field) in steps where field == .date || field == .messageID {
            throw ConditionFault("the sender cannot hold \(field == .date ? "&*DATE;" : "&*MSGID;") (it is not part of an address)")
        }
        template.sender = steps
    }

    /// One template line, dot-stuffing and its line end removed.
    mutating func add(line: UnsafeRawBufferPointer, number: Int) throws(MergeError) {
        template.size += line.count
        if template.size > MergeTemplate.maxSize {
            throw MergeError(line: number, "the template is larger than \(MergeTemplate.maxSize / 1024 / 1024) MiB")
        }
        if line.first == UInt8(ascii: "."), let directive = TemplateCompiler.directive(line) {
            if case .begin(let condition) = directive {
                try begin(Array(line[condition]), number: number)
            } else {
                try apply(directive, number: number)
            }
            return
        }
        var steps = template.message
        template.message = []
        substitute(line, into: &steps)
        steps.append(.lineEnd)
        template.message = steps
        template.messageLines += 1
    }

    /// The compiled template, once every line is in.
    mutating func finish() throws(MergeError) -> MergeTemplate {
        if let open = blocks.last {
            throw MergeError(line: open.line, "the block begun by this .BB is not closed (no .EB before the end of the template)")
        }
        return template
    }

    enum Directive { case begin(Range<Int>), otherwise, end, comment, malformed(String) }

    /// What a line starting with `.` is, or nil for an ordinary line (`.Bbq`, `.`).
    static func directive(_ line: UnsafeRawBufferPointer) -> Directive? {
        if line.count >= 2 && line[1] == UInt8(ascii: "*") { return .comment }
        var i = 1
        while i < line.count && (line[i] | 0x20) >= 97 && (line[i] | 0x20) <= 122 { i += 1 }
        if i < line.count && line[i] != UInt8(ascii: " ") && line[i] != UInt8(ascii: "\t") { return nil }
        var rest = i
        while rest < line.count && (line[rest] == UInt8(ascii: " ") || line[rest] == UInt8(ascii: "\t")) { rest += 1 }
        var end = line.count
        while end > rest && (line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
        switch String(decoding: upper(line[1..<i]), as: UTF8.self) {
        case "BB": return rest < end ? .begin(rest..<end) : .malformed("a .BB line without a condition")
        case "ELSE": return rest < end ? .malformed("text after .ELSE") : .otherwise
        case "EB": return rest < end ? .malformed("text after .EB") : .end
        default: return nil
        }
    }

    private mutating func apply(_ directive: Directive, number: Int) throws(MergeError) {
        switch directive {
        case .comment:
            return
        case .malformed(let message):
            throw MergeError(line: number, message)
        case .begin:
            preconditionFailure("handled by begin(_:)")
        case .otherwise:
            guard let open = blocks.popLast() else { throw MergeError(line: number, ".ELSE without a .BB") }
            if open.jump != nil { throw MergeError(line: number, "a second .ELSE in the block begun on line \(open.line)") }
            let jump = template.message.count
            template.message.append(.jump(-1))
            patch(open.branch, to: template.message.count)
            blocks.append((open.branch, jump, open.line))
        case .end:
            guard let open = blocks.popLast() else { throw MergeError(line: number, ".EB without a .BB") }
            patch(open.jump ?? open.branch, to: template.message.count)
        }
    }

    /// `.BB`: the condition is parsed when the block opens.
    private mutating func begin(_ condition: [UInt8], number: Int) throws(MergeError) {
        let parsed: MergeCondition
        do {
            parsed = try MergeCondition.parse(condition) { resolve($0) }
        } catch {
            throw MergeError(line: number, "the condition does not parse: \(error.message)")
        }
        template.conditions.append(parsed)
        blocks.append((template.message.count, nil, number))
        template.message.append(.branch(template.conditions.count - 1, otherwise: -1))
    }

    private mutating func patch(_ step: Int, to target: Int) {
        switch template.message[step] {
        case .branch(let c, _): template.message[step] = .branch(c, otherwise: target)
        case .jump: template.message[step] = .jump(target)
        default: preconditionFailure("only branches and jumps are patched")
        }
    }

    /// Cuts a line into literal runs and `&NAME;` fields; unknown names stay literal.
    private mutating func substitute(_ line: UnsafeRawBufferPointer, into steps: inout [MergeTemplate.Step]) {
        let n = line.count
        var runStart = 0
        var i = 0
        while i < n {
            guard line[i] == UInt8(ascii: "&") else { i += 1; continue }
            var j = i + 1
            if j < n && line[j] == UInt8(ascii: "*") { j += 1 }
            let nameStart = j
            while j < n && MergeField.isNameByte(line[j]) { j += 1 }
            if j > nameStart, j < n, line[j] == UInt8(ascii: ";"), let field = resolve(line[(i + 1)..<j]) {
                appendText(line[runStart..<i], to: &steps)
                steps.append(.field(field))
                i = j + 1
                runStart = i
            } else {
                i += 1
            }
        }
        appendText(line[runStart..<n], to: &steps)
    }

    private mutating func appendText(_ bytes: Slice<UnsafeRawBufferPointer>, to steps: inout [MergeTemplate.Step]) {
        guard !bytes.isEmpty else { return }
        let start = template.literals.count
        template.literals.append(contentsOf: bytes)
        if case .text(let s, let e)? = steps.last, e == start {
            steps[steps.count - 1] = .text(s, template.literals.count)
        } else {
            steps.append(.text(start, template.literals.count))
        }
    }
}
