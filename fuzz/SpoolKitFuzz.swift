// libFuzzer entry for SpoolKit's parsers, compiled together with SpoolKit's sources by
// scripts/fuzz. POOLD_FUZZ_TARGET picks the parser: `bsmtp` (the job reader), `merge` (the
// mail-merge checker, row reader and renderer) or `config` (the site configuration). None
// may crash; what a reader accepts must hold its promises (every address sendable,
// message bounds inside the file; a checked merge job renders every row, and no rendered
// line can end DATA early).

#if canImport(Glibc)
import Glibc
#endif
import Foundation

let fuzzTarget = getenv("POOLD_FUZZ_TARGET").map { String(cString: $0) } ?? "bsmtp"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch fuzzTarget {
    case "config":
        if let config = try? SiteConfiguration.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.cfg") {
            precondition(!config.spoolDirectory.isEmpty)
            for w in config.workers { precondition(w.settings.count >= 1) }
        }
    case "merge":
        fuzzMerge(bytes)
    default:
        if let job = try? BSMTPReader.parse(bytes) {
            for tx in job.transactions {
                precondition(tx.messageStart <= tx.messageEnd && tx.messageEnd <= Int64(size))
                precondition(!tx.recipients.isEmpty)
                for r in tx.recipients { precondition(EnvelopeSyntax.problem(address: r.address, allowNull: false) == nil) }
                precondition(EnvelopeSyntax.problem(address: tx.sender, allowNull: true) == nil)
            }
        }
    }
    return 0
}

/// Rows read and rendered per input at most (the check pass itself reads them all).
let mergeRowsRendered = 64

func fuzzMerge(_ bytes: [UInt8]) {
    // The fast address check never accepts what EnvelopeSyntax refuses.
    let candidate = Array(bytes.prefix(300))
    if candidate.withUnsafeBytes({ MergeAddress.isPlainlyValid($0) }) {
        precondition(EnvelopeSyntax.problem(address: String(decoding: candidate, as: UTF8.self), allowNull: false) == nil)
    }
    guard let job = try? MergeReader.parse(bytes) else { return }
    precondition(job.rowCount >= 1 && job.addressColumn < job.columns.count)
    precondition(job.headerRange.upperBound == job.rowsRange.lowerBound && job.rowsRange.upperBound <= job.templateRange.lowerBound)
    precondition(job.templateRange.upperBound <= Int64(bytes.count))
    let reader = MergeRowReader(bytes: bytes, job: job)
    var renderer = MergeRenderer(job: job, stem: "A1", heloName: "h.example", clock: { Date(timeIntervalSince1970: 0) },
                                 timeZone: TimeZone(secondsFromGMT: 0)!)
    var row = MergeRow()
    var message = RenderedMessage()
    var lastFields: [[UInt8]] = []
    var count = 0
    while count < mergeRowsRendered {
        guard let more = try? reader.next(into: &row) else { preconditionFailure("a checked row does not read back") }
        if !more { break }
        precondition(row.fieldCount == job.columns.count && row.index == count)
        do { try renderer.render(row, into: &message) } catch { preconditionFailure("a checked row does not render: \(error)") }
        precondition(EnvelopeSyntax.problem(address: message.recipient, allowNull: false) == nil)
        precondition(EnvelopeSyntax.problem(address: message.sender, allowNull: job.isNullSender) == nil)
        var wire: [UInt8] = []
        try? message.stream { wire += $0 }
        precondition(Int64(wire.count) == message.wireSize && message.unstuffedSize == Int64(message.bytes.count))
        // Every wire line that starts with a dot carries a stuffing dot: none is a lone "."
        // and unstuffing gives the message back.
        var unstuffed: [UInt8] = []
        var atLineStart = true
        for b in wire {
            if atLineStart && b == UInt8(ascii: ".") {
                atLineStart = false
                continue
            }
            unstuffed.append(b)
            atLineStart = b == 10
        }
        precondition(unstuffed == message.bytes)
        precondition(!wire.starts(with: Array(".\r\n".utf8)))
        lastFields = (0..<row.fieldCount).map { Array(row.field($0)) }
        count += 1
    }
    precondition(count == min(job.rowCount, mergeRowsRendered))
    // Seeking to the last row read gives the same row.
    guard (try? reader.seek(toIndex: count - 1)) != nil, (try? reader.next(into: &row)) == true else {
        preconditionFailure("seeking to a checked row fails")
    }
    precondition((0..<row.fieldCount).map { Array(row.field($0)) } == lastFields)
}
