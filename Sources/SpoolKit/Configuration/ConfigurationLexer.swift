// Splits a site configuration into KEY=VALUE entries, LISTSERV style: blank lines and lines
// whose first non-blank character is `#` are skipped, CRLF and LF both end a line, keys are
// upper-cased, and a value may be wrapped in double quotes (with `\"` and `\\` escapes).
// Invariant: no entry holds NUL, CR, LF or another control character but tab, so nothing
// read from the configuration can reach the SMTP wire as a line break.

struct ConfigurationEntry: Sendable, Equatable {
    var key: String     // upper-cased, as the key table spells it
    var value: String   // trimmed, quotes removed
    var line: Int       // 1-based
}

enum ConfigurationLexer {
    static func entries(in text: String, file: String) throws(ConfigurationError) -> [ConfigurationEntry] {
        var entries: [ConfigurationEntry] = []
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (index, bytes) in lines.enumerated() {
            let number = index + 1
            var line = String(decoding: bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes, as: UTF8.self)
            if number == 1, line.unicodeScalars.first == "\u{FEFF}" { line.unicodeScalars.removeFirst() }
            let content = ConfigurationText.trimmed(line[...])
            if content.isEmpty || content.hasPrefix("#") { continue }
            do throws(ConfigurationFault) {
                entries.append(try entry(content, line: number))
            } catch {
                throw ConfigurationError(file: file, line: number, message: error.message)
            }
        }
        return entries
    }

    private static func entry(_ content: Substring, line: Int) throws(ConfigurationFault) -> ConfigurationEntry {
        if let bad = content.unicodeScalars.first(where: ConfigurationText.isForbidden) {
            throw ConfigurationFault("the line holds a control character (\(ConfigurationText.codePoint(bad))); "
                + "a value must not hold NUL, CR or LF")
        }
        guard let equals = content.firstIndex(of: "=") else {
            throw ConfigurationFault("expected KEY=VALUE, found '\(content)'")
        }
        let key = ConfigurationText.trimmed(content[..<equals]).uppercased()
        guard !key.isEmpty else { throw ConfigurationFault("no key before '='") }
        let raw = ConfigurationText.trimmed(content[content.index(after: equals)...])
        do throws(ConfigurationFault) {
            return ConfigurationEntry(key: key, value: try unquoted(raw), line: line)
        } catch {
            throw ConfigurationFault("\(key): \(error.message)")
        }
    }

    /// The value with its surrounding double quotes removed and `\"`, `\\` undone. Any other
    /// backslash stays as written (a path may hold one).
    static func unquoted(_ raw: Substring) throws(ConfigurationFault) -> String {
        guard raw.first == "\"" else { return String(raw) }
        var value = String.UnicodeScalarView()
        var escaped = false
        var closed = false
        for scalar in raw.unicodeScalars.dropFirst() {
            if closed { throw ConfigurationFault("text after the closing quote in \(raw)") }
            if escaped {
                if scalar != "\"" && scalar != "\\" { value.append("\\") }
                value.append(scalar)
                escaped = false
            } else if scalar == "\\" {
                escaped = true
            } else if scalar == "\"" {
                closed = true
            } else {
                value.append(scalar)
            }
        }
        guard closed else { throw ConfigurationFault("the closing quote is missing in \(raw)") }
        return String(value)
    }
}

/// Small text rules shared by the configuration parsers.
enum ConfigurationText {
    static func isBlank(_ character: Character) -> Bool { character == " " || character == "\t" }

    static func trimmed(_ text: Substring) -> Substring {
        guard let first = text.firstIndex(where: { !isBlank($0) }),
              let last = text.lastIndex(where: { !isBlank($0) }) else { return text[text.endIndex...] }
        return text[first...last]
    }

    /// Blank-separated words, with runs of blanks counting as one separator.
    static func words(_ text: Substring) -> [Substring] {
        text.split(whereSeparator: isBlank)
    }

    static func isForbidden(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F
    }

    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    static func isDigits<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
