// `poolctl submit`: turns a message (or a BSMTP job, or a CSV table and a template: a
// merge job, see Merge.swift) into a job file, checked whole and written atomically under
// a fresh numeric id. Nothing is written when anything is wrong.

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
        var merge = false
        var table: String?
        var list: String?
        var admin = false
        var poolGiven = false
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
                poolGiven = true
            case "--list": list = value()
            case "--admin": admin = true
            case "--from": from = value()
            case "--to": to.append(value())
            case "--bsmtp": bsmtp = true
            case "--merge": merge = true
            case "--table": table = value()
            default: fail("submit: unknown option '\(arguments[i])'", status: 64)
            }
            i += 1
        }
        if let list {
            if poolGiven { fail("--list chooses the pool; drop --pool", status: 64) }
            pool = config.pool(forList: list, admin: admin)
        } else if admin {
            fail("--admin goes with --list NAME", status: 64)
        }
        if merge {
            if bsmtp { fail("--merge and --bsmtp do not go together", status: 64) }
            guard let from else { fail("--merge needs --from ADDR (the sender; it may hold &NAME; fields)", status: 64) }
            guard let table else { fail("--merge needs --table FILE.csv", status: 64) }
            if !to.isEmpty { fail("--merge takes the recipients from the table's EMAIL column; drop --to", status: 64) }
            MergeCommands.submit(config, pool: pool, sender: from, tablePath: table)
        }
        if table != nil { fail("--table goes with --merge", status: 64) }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        let job: [UInt8]
        if bsmtp {
            if from != nil || !to.isEmpty { fail("--bsmtp takes the envelope from the job; drop --from/--to", status: 64) }
            job = Array(input)
            do {
                _ = try JobReader.parse(job)
            } catch {
                fail("not a valid \(JobReader.isMerge(job.prefix(4096)) ? "merge" : "BSMTP") job: \(error)")
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
            // RFC 6152: a message with 8-bit octets says so, so that poold converts it for a
            // relay that does not offer 8BITMIME.
            let eightBit = input.contains { $0 >= 0x80 }
            job = JobWriter.bsmtp(message: Array(input), from: from, to: to, senderParameters: eightBit ? ["BODY=8BITMIME"] : [])
        }
        let spool = Spool(root: config.spoolDirectory)
        do {
            print(try JobWriter.submit(job, pool: pool, spool: spool).fileName)
        } catch {
            fail("cannot write the job in \(spool.root): \(error)")
        }
    }
}
