// `&*DATE;`: the RFC 5322 §3.3 date-time when a message is rendered, e.g.
// `Tue, 18 Nov 2025 06:07:19 +0100`. The renderer asks its injected clock for the time
// and formats it again only when the second changes, so a million rows cost a few
// thousand formattings.

import Foundation

public enum MessageDate {
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `seconds` since the epoch, shown in the zone `utcOffset` seconds east of UTC.
    public static func format(seconds: Int64, utcOffset: Int) -> [UInt8] {
        let local = seconds + Int64(utcOffset)
        var dayNumber = local / 86_400
        var second = local % 86_400
        if second < 0 {
            second += 86_400
            dayNumber -= 1
        }
        // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = Int(((dayNumber % 7) + 7) % 7)

        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let sign = utcOffset < 0 ? "-" : "+"
        let offsetMinutes = abs(utcOffset) / 60
        let text = "\(days[weekday]), \(day) \(months[Int(month) - 1]) \(year) "
            + "\(two(second / 3600)):\(two(second % 3600 / 60)):\(two(second % 60)) "
            + "\(sign)\(two(Int64(offsetMinutes / 60)))\(two(Int64(offsetMinutes % 60)))"
        return Array(text.utf8)
    }

    /// The date `date` in `zone`.
    public static func format(_ date: Date, in zone: TimeZone) -> [UInt8] {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        return format(seconds: seconds, utcOffset: zone.secondsFromGMT(for: date))
    }
}
