// The value syntaxes that several keys share: whole numbers, 0|1 flags, durations
// (`30s`, `5m`, `0.5s`), pool letters (`A-`, `*`), LISTSERV rate limits (`12Mbps AB:1.5Mbps`)
// and size bins. Each parser takes the value's text and throws a fault that says what is
// wrong with it; the caller adds the key, the file and the line.

enum ConfigurationValues {
    static func positiveWhole(_ text: Substring) throws(ConfigurationFault) -> Int {
        guard ConfigurationText.isDigits(text), let number = Int(text), number > 0 else {
            throw ConfigurationFault("'\(text)' is not a positive whole number")
        }
        return number
    }

    static func flag(_ text: Substring) throws(ConfigurationFault) -> Bool {
        switch text {
        case "0": return false
        case "1": return true
        default: throw ConfigurationFault("'\(text)' is not 0 or 1")
        }
    }

    /// A non-empty value kept as written (paths, user names).
    static func text(_ text: Substring) throws(ConfigurationFault) -> String {
        guard !ConfigurationText.trimmed(text).isEmpty else { throw ConfigurationFault("the value is empty") }
        return String(text)
    }

    // MARK: Durations

    private static let durationUnits: [String: Seconds] = ["": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400]

    /// `<number><unit>`: unit `ms`, `s`, `m`, `h` or `d` (a bare number is seconds), decimals allowed.
    static func duration(_ text: Substring, allowZero: Bool = false) throws(ConfigurationFault) -> Seconds {
        guard let (number, unit) = numberAndUnit(text), let scale = durationUnits[unit.lowercased()] else {
            throw ConfigurationFault("'\(text)' is not a duration (write e.g. 30s, 5m, 2h, 5d)")
        }
        let seconds = number * scale
        guard seconds.isFinite, allowZero ? seconds >= 0 : seconds > 0 else {
            throw ConfigurationFault("'\(text)' must be longer than 0")
        }
        return seconds
    }

    /// Space-separated durations, at least one (RETRY_SCHEDULE).
    static func durations(_ text: Substring) throws(ConfigurationFault) -> [Seconds] {
        let words = ConfigurationText.words(text)
        guard !words.isEmpty else { throw ConfigurationFault("give at least one duration") }
        var result: [Seconds] = []
        for word in words { result.append(try duration(word)) }
        return result
    }

    /// A decimal number (`12`, `1.5`) and the letters after it.
    private static func numberAndUnit(_ text: Substring) -> (Double, Substring)? {
        let isNumeric: (Character) -> Bool = { $0.isASCII && ($0.isNumber || $0 == ".") }
        let end = text.firstIndex(where: { !isNumeric($0) }) ?? text.endIndex
        let digits = text[..<end]
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy(ConfigurationText.isDigits), let number = Double(digits) else {
            return nil
        }
        return (number, text[end...])
    }

    // MARK: Pools

    /// Pool letters as `POOL=` writes them: `A-` (pool A and the default pool), `AB`, or `*` (all).
    static func pools(_ text: Substring) throws(ConfigurationFault) -> PoolSet {
        guard !text.isEmpty else {
            throw ConfigurationFault("no pools given (write letters A-Z, '-' for the default pool, or '*' for all)")
        }
        if text == "*" { return .all }
        var set = PoolSet.none
        for character in text {
            guard let pool = Pool(character) else {
                if character == "*" { throw ConfigurationFault("'*' means every pool and stands alone, not in '\(text)'") }
                throw ConfigurationFault("'\(character)' in '\(text)' is not a pool (A-Z, '-' or '*')")
            }
            set.insert(pool)
        }
        return set
    }

    /// One pool letter (DEFAULT_LIST_POOL, LIST_POOL_<LIST>).
    static func pool(_ text: Substring) throws(ConfigurationFault) -> Pool {
        guard text.count == 1, let character = text.first, let pool = Pool(character) else {
            throw ConfigurationFault("'\(text)' is not a pool (one letter A-Z, or '-' for the default pool)")
        }
        return pool
    }

    /// `x,y`: the posting pool and the administrative pool; y defaults to x.
    static func listPools(_ text: Substring) throws(ConfigurationFault) -> ListPools {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(ConfigurationText.trimmed)
        guard parts.count <= 2 else { throw ConfigurationFault("'\(text)' is not 'x' or 'x,y' (two pools at most)") }
        let posting = try pool(parts[0])
        return ListPools(posting: posting, admin: parts.count == 2 ? try pool(parts[1]) : posting)
    }

    // MARK: Rates and sizes

    private static let rateUnits: [String: Double] = ["bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9]

    /// `12Mbps AB:1.5Mbps C:150kbps`: at most one server-wide limit, and one limit per pool group.
    static func rateLimits(_ text: Substring) throws(ConfigurationFault) -> [RateLimit] {
        var limits: [RateLimit] = []
        for item in ConfigurationText.words(text) {
            let pools: PoolSet?
            let rateText: Substring
            if let colon = item.firstIndex(of: ":") {
                pools = try self.pools(item[..<colon])
                rateText = item[item.index(after: colon)...]
            } else {
                pools = nil
                rateText = item
            }
            guard let (number, unit) = numberAndUnit(rateText), let scale = rateUnits[unit.lowercased()] else {
                throw ConfigurationFault("'\(rateText)' is not a rate (write e.g. 150kbps, 1.5Mbps, 1Gbps)")
            }
            guard number > 0, (number * scale).isFinite else { throw ConfigurationFault("'\(rateText)' must be more than 0") }
            if limits.contains(where: { $0.pools == pools }) {
                throw ConfigurationFault(pools.map { "pools \($0) are limited twice" } ?? "more than one server-wide limit")
            }
            limits.append(RateLimit(pools: pools, bitsPerSecond: number * scale))
        }
        guard !limits.isEmpty else { throw ConfigurationFault("no limit given") }
        return limits
    }

    /// `4 64 1000`: size bins in kB, positive and strictly increasing.
    static func sizeBins(_ text: Substring) throws(ConfigurationFault) -> [Int] {
        var bins: [Int] = []
        for word in ConfigurationText.words(text) {
            let bin = try positiveWhole(word)
            if let last = bins.last, bin <= last {
                throw ConfigurationFault("bins must grow: \(bin) comes after \(last)")
            }
            bins.append(bin)
        }
        guard !bins.isEmpty else { throw ConfigurationFault("no bins given") }
        return bins
    }

    /// `address:port` with an IPv4 address or a bracketed IPv6 one (DNS_SERVER): no name,
    /// since the resolver cannot ask a resolver to find itself.
    static func serverAddress(_ value: Substring) throws(ConfigurationFault) -> String {
        let text = String(ConfigurationText.trimmed(value))
        let host: Substring
        let port: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ConfigurationFault("'\(text)': no ']' after the IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            port = rest.isEmpty ? nil : rest.hasPrefix(":") ? rest.dropFirst() : nil
            if !rest.isEmpty && port == nil { throw ConfigurationFault("'\(text)': text after ']' must be :port") }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw ConfigurationFault("'\(host)' is not an IPv6 address")
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw ConfigurationFault("'\(text)': write an IPv6 address in brackets, [::1]:53") }
            host = parts[0]
            port = parts.count == 2 ? parts[1] : nil
            let octets = host.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4, octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }) else {
                throw ConfigurationFault("'\(host)' is not an IPv4 address (DNS_SERVER takes an address and a port, not a name)")
            }
        }
        if let port {
            guard let n = UInt16(port), n > 0 else { throw ConfigurationFault("'\(port)' is not a port 1...65535") }
        }
        return text
    }
}
