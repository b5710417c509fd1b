// The condition of a `.BB` line (LISTSERV's conditional blocks), parsed once when the job
// is checked and evaluated for every row without allocating:
//   condition  := and (OR and)*          AND binds tighter than OR
//   and        := unary (AND unary)*
//   unary      := NOT unary | "(" condition ")" | &FIELD [op value]
//   op         := = | <> | ^= | < | <= | > | >=          (^= is <>)
//   value      := "text" | 'text' | number | &FIELD       number: -?[0-9]+(\.[0-9]+)?
// `&FIELD` alone is true when the value is not empty (a trailing `;` is allowed). Two
// numbers compare as numbers, exactly (no floating point); anything else as text without
// regard to case. Keywords are case-insensitive; nesting is bounded (`maxDepth`).

struct MergeCondition: Sendable {
    static let maxDepth = 64

    enum Comparison: Sendable { case equal, notEqual, less, lessOrEqual, greater, greaterOrEqual }
    enum Operand: Sendable { case field(MergeField), literal([UInt8]) }
    indirect enum Node: Sendable {
        case present(MergeField)
        case compare(MergeField, Comparison, Operand)
        case not(Node)
        case and(Node, Node)
        case or(Node, Node)
    }

    let root: Node

    func isTrue(_ values: some FieldValues) -> Bool { MergeCondition.evaluate(root, values) }

    private static func evaluate(_ node: Node, _ values: some FieldValues) -> Bool {
        switch node {
        case .present(let field): return !values.value(field).isEmpty
        case .not(let inner): return !evaluate(inner, values)
        case .and(let a, let b): return evaluate(a, values) && evaluate(b, values)
        case .or(let a, let b): return evaluate(a, values) || evaluate(b, values)
        case .compare(let field, let comparison, let operand):
            let left = values.value(field)
            let order: Int
            switch operand {
            case .field(let other): order = MergeValueOrder.compare(left, values.value(other))
            case .literal(let bytes): order = bytes.withUnsafeBytes { MergeValueOrder.compare(left, $0) }
            }
            switch comparison {
            case .equal: return order == 0
            case .notEqual: return order != 0
            case .less: return order < 0
            case .lessOrEqual: return order <= 0
            case .greater: return order > 0
            case .greaterOrEqual: return order >= 0
            }
        }
    }

    /// Parses the text after `.BB `; `resolve` finds a field by its name (without `&`).
    /// Throws the reason it does not parse.
    static func parse(_ text: [UInt8], resolve: ([UInt8]) -> MergeField?) throws(ConditionFault) -> MergeCondition {
        var parser = ConditionParser(tokens: try ConditionToken.split(text, resolve: resolve))
        guard !parser.tokens.isEmpty else { throw ConditionFault("empty condition") }
        let root = try parser.condition(depth: 0)
        if parser.position < parser.tokens.count {
            throw ConditionFault("unexpected \(parser.tokens[parser.position].shown) after a complete condition")
        }
        return MergeCondition(root: root)
    }
}

struct ConditionFault: Error, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}

enum ConditionToken: Equatable {
    case field(MergeField, shown: String)
    case literal([UInt8], shown: String)
    case comparison(MergeCondition.Comparison, shown: String)
    case open, close, not, and, or

    var shown: String {
        switch self {
        case .field(_, let s), .literal(_, let s), .comparison(_, let s): return "'\(s)'"
        case .open: return "'('"
        case .close: return "')'"
        case .not: return "NOT"
        case .and: return "AND"
        case .or: return "OR"
        }
    }

    static func split(_ text: [UInt8], resolve: ([UInt8]) -> MergeField?) throws(ConditionFault) -> [ConditionToken] {
        var tokens: [ConditionToken] = []
        var i = 0
        let n = text.count
        func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
        func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 97 && (b | 0x20) <= 122 }
        func shown(_ range: Range<Int>) -> String { String(decoding: text[range], as: UTF8.self) }
        while i < n {
            let b = text[i]
            let start = i
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                i += 1
            case UInt8(ascii: "("): tokens.append(.open); i += 1
            case UInt8(ascii: ")"): tokens.append(.close); i += 1
            case UInt8(ascii: "&"):
                i += 1
                if i < n && text[i] == UInt8(ascii: "*") { i += 1 }
                let nameStart = i
                while i < n && MergeField.isNameByte(text[i]) { i += 1 }
                guard i > nameStart else { throw ConditionFault("'&' without a field name") }
                let name = Array(text[(start + 1)..<i])
                guard let field = resolve(name) else {
                    throw ConditionFault("unknown field &\(shown((start + 1)..<i)) (not a column or a system field)")
                }
                if i < n && text[i] == UInt8(ascii: ";") { i += 1 }
                tokens.append(.field(field, shown: shown(start..<i)))
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                i += 1
                while i < n && text[i] != b { i += 1 }
                guard i < n else { throw ConditionFault("the text begun with \(String(UnicodeScalar(b))) is not closed") }
                tokens.append(.literal(Array(text[(start + 1)..<i]), shown: shown(start..<(i + 1))))
                i += 1
            case UInt8(ascii: "-"), 48...57:
                if b == UInt8(ascii: "-") { i += 1 }
                let digits = i
                while i < n && isDigit(text[i]) { i += 1 }
                guard i > digits else { throw ConditionFault("'-' is not a number") }
                if i + 1 < n && text[i] == UInt8(ascii: ".") && isDigit(text[i + 1]) {
                    i += 1
                    while i < n && isDigit(text[i]) { i += 1 }
                }
                if i < n && (isLetter(text[i]) || isDigit(text[i]) || text[i] == UInt8(ascii: ".") || text[i] == UInt8(ascii: "_")) {
                    throw ConditionFault("'\(shown(start..<min(i + 1, n)))…' is not a number (quote text values)")
                }
                tokens.append(.literal(Array(text[start..<i]), shown: shown(start..<i)))
            case UInt8(ascii: "="): tokens.append(.comparison(.equal, shown: "=")); i += 1
            case UInt8(ascii: "^"):
                guard i + 1 < n && text[i + 1] == UInt8(ascii: "=") else { throw ConditionFault("'^' must be followed by '='") }
                tokens.append(.comparison(.notEqual, shown: "^=")); i += 2
            case UInt8(ascii: "<"), UInt8(ascii: ">"):
                let next: UInt8 = i + 1 < n ? text[i + 1] : 0
                if b == UInt8(ascii: "<") && next == UInt8(ascii: ">") {
                    tokens.append(.comparison(.notEqual, shown: "<>")); i += 2
                } else if next == UInt8(ascii: "=") {
                    tokens.append(.comparison(b == UInt8(ascii: "<") ? .lessOrEqual : .greaterOrEqual, shown: shown(i..<(i + 2)))); i += 2
                } else {
                    tokens.append(.comparison(b == UInt8(ascii: "<") ? .less : .greater, shown: shown(i..<(i + 1)))); i += 1
                }
            default:
                while i < n && (isLetter(text[i]) || isDigit(text[i]) || text[i] == UInt8(ascii: "_")) { i += 1 }
                if i == start {
                    throw ConditionFault("unexpected character '\(String(decoding: text[start..<min(start + 4, n)], as: UTF8.self))'")
                }
                switch shown(start..<i).uppercased() {
                case "NOT": tokens.append(.not)
                case "AND": tokens.append(.and)
                case "OR": tokens.append(.or)
                default: throw ConditionFault("unexpected word '\(shown(start..<i))' (fields are written &NAME, text is quoted)")
                }
            }
        }
        return tokens
    }
}

struct ConditionParser {
    let tokens: [ConditionToken]
    var position = 0

    private var current: ConditionToken? { position < tokens.count ? tokens[position] : nil }

    mutating func condition(depth: Int) throws(ConditionFault) -> MergeCondition.Node {
        var node = try conjunction(depth: depth)
        while current == .or {
            position += 1
            node = .or(node, try conjunction(depth: depth))
        }
        return node
    }

    private mutating func conjunction(depth: Int) throws(ConditionFault) -> MergeCondition.Node {
        var node = try unary(depth: depth)
        while current == .and {
            position += 1
            node = .and(node, try unary(depth: depth))
        }
        return node
    }

    private mutating func unary(depth: Int) throws(ConditionFault) -> MergeCondition.Node {
        guard depth < MergeCondition.maxDepth else { throw ConditionFault("nested more than \(MergeCondition.maxDepth) deep") }
        guard let token = current else { throw ConditionFault("the condition ends where a field, NOT or '(' was expected") }
        position += 1
        switch token {
        case .not:
            return .not(try unary(depth: depth + 1))
        case .open:
            let inner = try condition(depth: depth + 1)
            guard current == .close else {
                throw ConditionFault(current.map { "expected ')' but found \($0.shown)" } ?? "'(' is not closed")
            }
            position += 1
            return inner
        case .field(let field, _):
            guard case .comparison(let comparison, _)? = current else { return .present(field) }
            position += 1
            switch current {
            case .field(let other, _)?:
                position += 1
                return .compare(field, comparison, .field(other))
            case .literal(let bytes, _)?:
                position += 1
                return .compare(field, comparison, .literal(bytes))
            case let other?:
                throw ConditionFault("expected a value after the comparison, found \(other.shown)")
            case nil:
                throw ConditionFault("the condition ends where a value was expected")
            }
        case .literal, .comparison, .close, .and, .or:
            throw ConditionFault("unexpected \(token.shown) (a comparison starts with &FIELD)")
        }
    }
}

/// How two values order: as numbers when both are numbers, else as text without regard to
/// case (ASCII folded in place; other text through Unicode lower case).
enum MergeValueOrder {
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        if let x = DecimalText(a), let y = DecimalText(b) { return DecimalText.compare(x, y, a, b) }
        var ascii = true
        let n = min(a.count, b.count)
        for i in 0..<n {
            let p = a[i], q = b[i]
            if p >= 0x80 || q >= 0x80 { ascii = false; break }
            let x = p >= 65 && p <= 90 ? p + 32 : p
            let y = q >= 65 && q <= 90 ? q + 32 : q
            if x != y { return x < y ? -1 : 1 }
        }
        if ascii && !(a[n...].contains { $0 >= 0x80 } || b[n...].contains { $0 >= 0x80 }) {
            return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
        }
        let x = Array(String(decoding: a, as: UTF8.self).lowercased().utf8)
        let y = Array(String(decoding: b, as: UTF8.self).lowercased().utf8)
        return x == y ? 0 : (x.lexicographicallyPrecedes(y) ? -1 : 1)
    }
}

/// A value written `-?[0-9]+(\.[0-9]+)?`, as ranges of digits that matter.
struct DecimalText {
    var negative: Bool
    /// The integer digits without leading zeros, and the fraction without trailing zeros.
    var integer: Range<Int>
    var fraction: Range<Int>
    var isZero: Bool { integer.isEmpty && fraction.isEmpty }

    init?(_ v: UnsafeRawBufferPointer) {
        var i = 0
        negative = v.first == UInt8(ascii: "-")
        if negative { i = 1 }
        var intStart = i
        while i < v.count, v[i] >= 48, v[i] <= 57 { i += 1 }
        guard i > intStart else { return nil }
        let intEnd = i
        var fracEnd = i
        var fracStart = i
        if i < v.count {
            guard v[i] == UInt8(ascii: "."), i + 1 < v.count else { return nil }
            i += 1
            fracStart = i
            while i < v.count, v[i] >= 48, v[i] <= 57 { i += 1 }
            guard i == v.count, i > fracStart else { return nil }
            fracEnd = i
            while fracEnd > fracStart && v[fracEnd - 1] == 48 { fracEnd -= 1 }
        }
        while intStart < intEnd && v[intStart] == 48 { intStart += 1 }
        integer = intStart..<intEnd
        fraction = fracStart..<fracEnd
    }

    static func compare(_ x: DecimalText, _ y: DecimalText, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let xNegative = x.negative && !x.isZero, yNegative = y.negative && !y.isZero
        if xNegative != yNegative { return xNegative ? -1 : 1 }
        let magnitude = compareMagnitude(x, y, a, b)
        return xNegative ? -magnitude : magnitude
    }

    private static func compareMagnitude(_ x: DecimalText, _ y: DecimalText, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        if x.integer.count != y.integer.count { return x.integer.count < y.integer.count ? -1 : 1 }
        for k in 0..<x.integer.count {
            let p = a[x.integer.lowerBound + k], q = b[y.integer.lowerBound + k]
            if p != q { return p < q ? -1 : 1 }
        }
        for k in 0..<max(x.fraction.count, y.fraction.count) {
            let p: UInt8 = k < x.fraction.count ? a[x.fraction.lowerBound + k] : 48
            let q: UInt8 = k < y.fraction.count ? b[y.fraction.lowerBound + k] : 48
            if p != q { return p < q ? -1 : 1 }
        }
        return 0
    }
}
