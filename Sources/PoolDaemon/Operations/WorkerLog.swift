// LOG_DIR: one file per worker and local day, `smtpw<n>-YYYYMMDD.log`, as LISTSERV's
// SMTP workers keep them. The day's file is opened (append, 0640) at the first write of
// that day, so a file never holds two days; its first line is the worker's settings, and
// a restart on the same day appends them again, so every run in a file starts with them.
// Each event is one line, `2026-11-24T03:12:45+01:00 <text>`, written with one write(2)
// on an O_APPEND descriptor, so lines stay whole.
//
// The journal (stderr) stays the daemon's log; these files are the per-worker transcript
// operators grep. A file that cannot be opened is reported once, and the lines are dropped
// until it can: logging never stops delivery.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import SMTPClient
import Foundation
import SpoolKit
import Synchronization

final class WorkerLog: Sendable {
    let directory: String
    let worker: Int
    let header: String
    private let clock: @Sendable () -> Date
    private let calendar: Calendar

    private struct OpenFile {
        var day: String
        var descriptor: FileDescriptor
    }
    private struct State {
        var file: OpenFile?
        /// The day whose file could not be opened: reported once, then tried again quietly at each write.
        var failedDay: String?
    }
    private let state = Locked(State())

    init(directory: String, worker: Int, header: String, clock: @escaping @Sendable () -> Date = { Date() },
         calendar: Calendar = .current) {
        self.directory = directory
        self.worker = worker
        self.header = header
        self.clock = clock
        self.calendar = calendar
    }

    deinit { close() }

    /// The file for the local day of `date`.
    func path(for date: Date) -> String {
        "\(directory)/smtpw\(worker)-\(stamp(date).day).log"
    }

    /// Appends one line (a newline inside `line` becomes a space), opening the day's file first when the day changed.
    func write(_ line: String) {
        let now = clock()
        let (day, time) = stamp(now)
        let text = Array("\(time) \(line.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " "))\n".utf8)
        state.withLock { state in
            if state.file?.day != day {
                state.file?.descriptor.close()
                state.file = nil
                do {
                    let descriptor = try open(day: day)
                    state.file = OpenFile(day: day, descriptor: descriptor)
                    state.failedDay = nil
                    try descriptor.writeAll(Array("\(time) \(header)\n".utf8))
                } catch {
                    if state.failedDay == day { return }
                    state.failedDay = day
                    Log.warning("worker \(worker): cannot write its log in \(directory): \(error); its lines for \(day) are dropped")
                    return
                }
            }
            try? state.file?.descriptor.writeAll(text)
        }
    }

    /// Closes the file (at shutdown); the next write opens it again.
    func close() {
        state.withLock { state in
            state.file?.descriptor.close()
            state.file = nil
        }
    }

    private func open(day: String) throws -> FileDescriptor {
        try FileSystem.makeDirectory(directory)
        return try FileDescriptor.open("\(directory)/smtpw\(worker)-\(day).log", O_WRONLY | O_APPEND | O_CREAT, mode: 0o640)
    }

    /// `YYYYMMDD` and `YYYY-MM-DDThh:mm:ss±hh:mm`, both in the calendar's (local) time zone.
    private func stamp(_ date: Date) -> (day: String, time: String) {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let offset = calendar.timeZone.secondsFromGMT(for: date) / 60
        let zone = offset == 0 ? "Z" : (offset < 0 ? "-" : "+") + String(format: "%02d:%02d", abs(offset) / 60, abs(offset) % 60)
        let day = String(format: "%04d%02d%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
        let time = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0,
                          c.hour ?? 0, c.minute ?? 0, c.second ?? 0) + zone
        return (day, time)
    }
}
