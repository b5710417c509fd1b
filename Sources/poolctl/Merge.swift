// `poolctl submit --merge` and `poolctl preview`: a mail-merge job built from a CSV file and
// a template (both dot-stuffed on the way in, the table streamed, never held), checked
// whole by the daemon's own checker before it is linked into the spool; and one row of a
// merge job rendered as the relay will receive it. Errors name the CSV file's line or the
// template's line, not the job's.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum MergeCommands {
    /// Output is gathered and written in pieces this large.
    static let writeBufferSize = 256 * 1024

    static func submit(_ config: SiteConfiguration, pool: Pool, sender: String, tablePath: String) -> Never {
        let template = Array(FileHandle.standardInput.readDataToEndOfFile())
        if template.isEmpty { fail("the template on standard input is empty") }
        if template.contains(0) { fail("the template contains a NUL byte") }
        if template.count > MergeTemplate.maxSize { fail("the template is larger than \(MergeTemplate.maxSize / 1024 / 1024) MiB") }
        let table: FileDescriptor
        do { table = try FileDescriptor.open(tablePath, O_RDONLY) } catch { fail("cannot read the table: \(error)") }
        defer { table.close() }
        let spool = Spool(root: config.spoolDirectory)
        let head = MergeJobWriter.head(sender: sender)
        var tableLines = 0
        do {
            let name = try JobWriter.submit(pool: pool, spool: spool, write: { fd in
                var out = BufferedOutput(fd)
                try out.write(head)
                var stuffer = DotStuffer(dropsByteOrderMark: true, dropsTrailingBlankLines: true)
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = try chunk.withUnsafeMutableBytes { try table.read(into: $0) }
                    if n == 0 { break }
                    try stuffer.add(chunk[0..<n]) { try out.write($0) }
                }
                try stuffer.finish { try out.write($0) }
                tableLines = stuffer.lines
                try out.write(Array(".\r\nDATA\r\n".utf8))
                var body = DotStuffer()
                try body.add(template) { try out.write($0) }
                try body.finish { try out.write($0) }
                try out.write(Array(".\r\n".utf8))
                try out.flush()
            }, check: { path in
                _ = try MergeReader.read(path: path)
            })
            print(name.fileName)
            exit(0)
        } catch let error as MergeError {
            fail(explain(error, tablePath: tablePath, tableLines: tableLines))
        } catch {
            fail("cannot write the job in \(spool.root): \(error)")
        }
    }

    /// Where a fault of the assembled job lies in what the operator wrote: the job's lines
    /// are MERGE, MAIL FROM, TABLE, the CSV file's lines, `.`, DATA, the template's lines.
    static func explain(_ error: MergeError, tablePath: String, tableLines: Int) -> String {
        let row = error.row.map { " (row \($0))" } ?? ""
        switch error.line {
        case 2: return "--from: \(error.message)"
        case 4..<(4 + tableLines): return "\(tablePath) line \(error.line - 3)\(row): \(error.message)"
        case (6 + tableLines)...: return "the template, line \(error.line - 5 - tableLines): \(error.message)"
        default: return "\(tablePath): \(error.message)"
        }
    }

    /// `preview JOB [--row N]`: row N's message exactly as rendered (dot-stuffing undone,
    /// CRLF) on standard output, its envelope on standard error.
    static func preview(_ config: SiteConfiguration, _ arguments: [String]) -> Never {
        var target: String?
        var number = 1
        var rest = arguments[...]
        while let a = rest.popFirst() {
            switch a {
            case "--row":
                guard let n = rest.popFirst().flatMap({ Int($0) }) else { fail("preview: --row needs a row number", status: 64) }
                number = n
            default:
                // A default-pool job's name starts with '-' too.
                guard target == nil, !a.hasPrefix("-") || JobName(a) != nil else { fail("preview: unexpected '\(a)'", status: 64) }
                target = a
            }
        }
        guard let target else { fail("preview takes a job: poolctl preview JOB [--row N]", status: 64) }
        let path = locate(target, in: Spool(root: config.spoolDirectory))
        let job: MergeJob
        do {
            switch try JobReader.read(path: path) {
            case .merge(let merge): job = merge
            case .bsmtp: fail("\(target) is a BSMTP job, not a merge job: its messages go as they stand in the file")
            }
        } catch let error as SystemError {
            fail("cannot read \(path): \(error)")
        } catch {
            fail("\(target) is not a valid job: \(error)")
        }
        let fileName = String(path.split(separator: "/").last ?? "")
        let stem = fileName.hasSuffix(JobName.suffix) ? String(fileName.dropLast(JobName.suffix.count)) : fileName
        var renderer = MergeRenderer(job: job, stem: stem, heloName: config.heloName ?? hostName())
        var row = MergeRow()
        var message = RenderedMessage()
        do {
            let reader = try MergeRowReader(path: path, job: job)
            try reader.seek(toRowNumber: number)
            guard try reader.next(into: &row) else { fail("\(target) has no row \(number)") }
            try renderer.render(row, into: &message)
        } catch let error as MergeError {
            fail("\(target): \(error.row == nil ? error.message : error.description)")
        } catch {
            fail("cannot read \(path): \(error)")
        }
        let parameters = job.senderParameters.map { " " + $0 }.joined()
        FileHandle.standardError.write(Data("row \(number) of \(job.rowNumbers.lowerBound)...\(job.rowNumbers.upperBound): MAIL FROM:<\(message.sender)>\(parameters) RCPT TO:<\(message.recipient)> (\(message.wireSize) bytes on the wire)\n".utf8))
        FileHandle.standardOutput.write(Data(message.bytes))
        exit(0)
    }

    /// A job's path from its name (queued, deferred or held) or a path as given.
    static func locate(_ target: String, in spool: Spool) -> String {
        if target.contains("/") { return target }
        if JobName(target) != nil {
            for directory in [spool.root, spool.deferredDirectory, spool.holdDirectory] where FileSystem.exists(directory + "/" + target) {
                return directory + "/" + target
            }
            fail("no job \(target) in \(spool.root) (queued, deferred or held)")
        }
        if FileSystem.exists(target) { return target }
        fail("'\(target)' is neither a job name (like A00012345.MAIL) nor a file")
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `show JOB` for a merge job: what it holds, how it will render, and (from its journal,
    /// `journal` its path) how far its delivery has come.
    static func describe(_ job: MergeJob, journal path: String? = nil) {
        let parameters = job.senderParameters.map { " " + $0 }.joined()
        print("merge job: \(job.rowCount) rows (rows \(job.rowNumbers.lowerBound)...\(job.rowNumbers.upperBound)), columns \(job.columns.joined(separator: ","))")
        print("sender: MAIL FROM:<\(job.sender)>\(parameters)")
        print("template: \(Status.bytes(Int64(job.template.size))), \(job.template.messageLines) lines, \(job.template.blockCount) conditional blocks")
        if let share = job.parameters.share {
            print("share \(share.index) of \(share.count) of \(job.parameters.stem ?? "?") (HELO \(job.parameters.heloName ?? "?")); never distributed again")
        } else if job.parameters != MergeParameters() {
            print("MERGE\(job.parameters.lineArguments)")
        }
        guard let path else { return }
        do {
            let journal = try MergeJournal(path: path, rowCount: job.rowCount)
            let waiting = job.rowCount - journal.decided.count
            print("rows: \(journal.delivered) delivered, \(journal.failed) failed (bounced), \(journal.stillDeferred) deferred, \(waiting) not yet delivered, of \(job.rowCount)")
            if journal.passes > 0 {
                let next = journal.nextAttempt.map { Date(timeIntervalSince1970: $0) }.map { "\($0)" } ?? "-"
                print("passes ended with rows deferred: \(journal.passes), next pass: \(next)")
            }
        } catch {
            print("rows: cannot read the journal \(path): \(error)")
        }
    }
}

/// Gathers small writes into large ones.
struct BufferedOutput {
    let fd: FileDescriptor
    var buffer: [UInt8] = []

    init(_ fd: FileDescriptor) {
        self.fd = fd
        buffer.reserveCapacity(MergeCommands.writeBufferSize)
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= MergeCommands.writeBufferSize { try flush() }
    }

    mutating func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    mutating func flush() throws {
        try fd.writeAll(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
