// Open-time windows of a worker line: `(Mon-Fri 08:00-18:00, Sat,Sun 00:00-23:59)`.
// A window is accurate to the minute and its end minute is inclusive ("00:00-05:00" is
// open through 05:00:59). A window whose end is before its start crosses midnight and
// belongs to the day it starts on: "Fri 22:00-02:00" is open Fri 22:00-23:59 and
// Sat 00:00-02:00. Day ranges wrap around the week: "Fri-Mon" is Fri, Sat, Sun, Mon.

/// A day of the week, numbered as Foundation's `Calendar` numbers weekdays, minus one.
public enum Weekday: Int, Sendable, CaseIterable {
    case sunday = 0, monday, tuesday, wednesday, thursday, friday, saturday

    /// The operator's week, as windows are written and printed.
    static let mondayFirst: [Weekday] = [.monday, .tuesday, .wednesday, .thursday, .friday, .saturday, .sunday]

    var previous: Weekday { Weekday(rawValue: (rawValue + 6) % 7)! }
    var next: Weekday { Weekday(rawValue: (rawValue + 1) % 7)! }

    var shortName: String {
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][rawValue]
    }

    private var fullName: String {
        ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"][rawValue]
    }

    /// `Mon` or `Monday`, in any case.
    init?(named name: Substring) {
        let lowered = name.lowercased()
        guard let day = Weekday.allCases.first(where: { $0.shortName.lowercased() == lowered || $0.fullName == lowered }) else {
            return nil
        }
        self = day
    }
}

public struct OpenWindow: Hashable, Sendable, CustomStringConvertible {
    /// The days the window starts on; empty means every day.
    public var days: Set<Weekday>
    /// Minutes after midnight, 0..<1440.
    public var start: Int
    /// Minutes after midnight, 0..<1440, inclusive.
    public var end: Int

    public init(days: Set<Weekday> = [], start: Int, end: Int) {
        self.days = days
        self.start = start
        self.end = end
    }

    private func starts(on day: Weekday) -> Bool { days.isEmpty || days.contains(day) }

    /// Is the window open at this local weekday and minute of the day? A window with end < start crosses midnight:
    /// "Fri 22:00-02:00" is open Fri 22:00..23:59 and Sat 00:00..02:00.
    public func isOpen(weekday: Weekday, minute: Int) -> Bool {
        if start <= end { return starts(on: weekday) && start <= minute && minute <= end }
        return (starts(on: weekday) && minute >= start) || (starts(on: weekday.previous) && minute <= end)
    }

    /// As written, normalised: "Mon-Fri 08:00-18:00", "Sat,Sun 00:00-23:59", "00:00-05:00".
    public var description: String {
        let time = "\(OpenWindow.clock(start))-\(OpenWindow.clock(end))"
        return days.isEmpty ? time : "\(OpenWindow.describe(days)) \(time)"
    }

    static func clock(_ minute: Int) -> String {
        let hours = minute / 60, minutes = minute % 60
        return (hours < 10 ? "0" : "") + "\(hours):" + (minutes < 10 ? "0" : "") + "\(minutes)"
    }

    /// Runs of consecutive days, Monday first: three or more as a range ("Mon-Fri",
    /// "Fri-Mon"), shorter runs as a list ("Sat,Sun").
    static func describe(_ days: Set<Weekday>) -> String {
        guard days.count < 7 else { return "Mon-Sun" }
        // Begin where a run begins, so a run that wraps past Sunday is printed whole.
        guard let first = Weekday.mondayFirst.first(where: { days.contains($0) && !days.contains($0.previous) }) else {
            return ""
        }
        var runs: [[Weekday]] = []
        var day = first
        for _ in 0..<7 {
            if days.contains(day) {
                if let last = runs.last?.last, last.next == day { runs[runs.count - 1].append(day) } else { runs.append([day]) }
            }
            day = day.next
        }
        return runs.map { run in
            run.count >= 3 ? "\(run[0].shortName)-\(run[run.count - 1].shortName)" : run.map(\.shortName).joined(separator: ",")
        }.joined(separator: ",")
    }
}

enum OpenWindowSyntax {
    /// The text between a worker line's parentheses. Split on commas, a piece that is only
    /// day names belongs to the next piece's window, so `Sat,Sun 00:00-23:59, Mon-Fri
    /// 00:00-05:00` is two windows.
    static func windows(_ text: Substring) throws(ConfigurationFault) -> [OpenWindow] {
        var windows: [OpenWindow] = []
        var pendingDays: [Substring] = []
        for piece in text.split(separator: ",", omittingEmptySubsequences: false).map(ConfigurationText.trimmed) {
            guard !piece.isEmpty else { throw ConfigurationFault("an empty window in '(\(text))'") }
            // Day names hold no digits, so the time range starts at the first digit.
            guard let timeStart = piece.firstIndex(where: { $0.isASCII && $0.isNumber }) else {
                pendingDays.append(piece)
                continue
            }
            let dayWords = pendingDays + ConfigurationText.words(piece[..<timeStart])
            pendingDays = []
            let (start, end) = try timeRange(piece[timeStart...])
            windows.append(OpenWindow(days: try days(dayWords), start: start, end: end))
        }
        if !pendingDays.isEmpty {
            throw ConfigurationFault("'\(pendingDays.joined(separator: ","))' has no time range after it (write e.g. Sat,Sun 00:00-23:59)")
        }
        return windows
    }

    /// Day names and ranges (`Mon`, `Fri-Mon`); all seven days come back as the empty set.
    static func days(_ words: [Substring]) throws(ConfigurationFault) -> Set<Weekday> {
        var days = Set<Weekday>()
        for word in words {
            let ends = word.split(separator: "-", omittingEmptySubsequences: false)
            var named: [Weekday] = []
            for end in ends {
                guard let day = Weekday(named: end) else { throw ConfigurationFault("'\(end)' in '\(word)' is not a weekday (Mon … Sun)") }
                named.append(day)
            }
            guard named.count <= 2 else { throw ConfigurationFault("'\(word)' is not a day or a range of days like Mon-Fri") }
            var day = named[0]
            days.insert(day)
            while day != named[named.count - 1] {
                day = day.next
                days.insert(day)
            }
        }
        return days.count == 7 ? [] : days
    }

    /// `hh:mm-hh:mm` (blanks around `-` allowed), end inclusive; start and end must differ.
    static func timeRange(_ text: Substring) throws(ConfigurationFault) -> (Int, Int) {
        let compact = text.filter { !ConfigurationText.isBlank($0) }
        let ends = compact.split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count == 2, let start = minute(ends[0]), let end = minute(ends[1]) else {
            throw ConfigurationFault("'\(text)' is not a time range hh:mm-hh:mm (hours 00-23, minutes 00-59)")
        }
        guard start != end else {
            throw ConfigurationFault("'\(text)' opens and closes at the same minute")
        }
        return (start, end)
    }

    /// `hh:mm` (or `h:mm`) as minutes after midnight.
    private static func minute(_ text: Substring) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
              ConfigurationText.isDigits(parts[0]), ConfigurationText.isDigits(parts[1]),
              let hours = Int(parts[0]), let minutes = Int(parts[1]), hours < 24, minutes < 60 else { return nil }
        return hours * 60 + minutes
    }
}
