// `poolctl submit`: turns a message (or a BSMTP job) into a job file, checked whole and
// written atomically under a fresh numeric id. Nothing is written when anything is wrong.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum Submit {
    static func run(_ config: SiteConfiguration, _ arguments: [String]) {
        var pool = Pool.default
        var from: String?
        var to: [String] = []
        var bsmtp = false
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value", status: 64) }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--pool":
                let v = value()
                guard v.count == 1, let p = Pool(Character(v)) else { fail("--pool takes one letter A-Z or '-', not '\(v)'", status: 64) }
                pool = p
            case "--from": from = value()
            case "--to": to.append(value())
            case "--bsmtp": bsmtp = true
            default: fail("submit: unknown option '\(arguments[i])'", status: 64)
            }
            i += 1
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        let job: [UInt8]
        if bsmtp {
            if from != nil || !to.isEmpty { fail("--bsmtp takes the envelope from the job; drop --from/--to", status: 64) }
            job = Array(input)
            do {
                _ = try BSMTPReader.parse(job)
            } catch {
                fail("not a valid BSMTP job: \(error)")
            }
        } else {
            guard let from else { fail("--from is required (use --from '' for the null sender)", status: 64) }
            guard !to.isEmpty else { fail("at least one --to is required", status: 64) }
            if let problem = EnvelopeSyntax.problem(address: from, allowNull: true) { fail("--from <\(from)>: \(problem)") }
            for address in to {
                if let problem = EnvelopeSyntax.problem(address: address, allowNull: false) { fail("--to <\(address)>: \(problem)") }
            }
            if input.contains(0) { fail("the message contains a NUL byte") }
            if input.isEmpty { fail("the message on standard input is empty") }
            job = wrap(message: Array(input), from: from, to: to)
        }
        let spool = Spool(root: config.spoolDirectory)
        for _ in 0..<100 {
            let name = "\(pool)\(freshID()).MAIL"
            do {
                try AtomicFile.write(directory: spool.root, name: name, bytes: job, mode: 0o640, replace: false)
                print(name)
                exit(0)
            } catch let error as SystemError where error.isExisting {
                continue
            } catch {
                fail("cannot write the job in \(spool.root): \(error)")
            }
        }
        fail("cannot find a free job name in \(spool.root)")
    }

    /// A BSMTP job for one message: envelope lines, the message dot-stuffed, the final dot.
    static func wrap(message: [UInt8], from: String, to: [String]) -> [UInt8] {
        var out = Array("MAIL FROM:<\(from)>\r\n".utf8)
        for address in to { out += Array("RCPT TO:<\(address)>\r\n".utf8) }
        out += Array("DATA\r\n".utf8)
        var lines = message.split(separator: 10, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for var line in lines {
            if line.last == 13 { line.removeLast() }
            if line.first == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out += line
            out += [13, 10]
        }
        out += Array(".\r\n".utf8)
        return out
    }

    /// 18 digits: seconds since 2020, microseconds, and the pid's last three digits, so
    /// ids grow with time and two submitters rarely meet (a clash retries).
    static func freshID() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        let seconds = Int(tv.tv_sec) - 1_577_836_800
        let micro = Int(tv.tv_usec)
        let pid = Int(getpid()) % 1000
        let text = String(seconds) + String(repeating: "0", count: 6 - String(micro).count) + String(micro)
            + String(repeating: "0", count: 3 - String(pid).count) + String(pid)
        return String(repeating: "0", count: max(0, 18 - text.count)) + text
    }
}
