// The job file a share carries: what the peer spools, and what SELF's share is here.
//   - merge: `MergeJobWriter.writeShare` — the header row, the share's rows as written, the
//     template, under `MERGE STEM= FIRSTROW= HELO= SHARE=i/n`, so the rows render with the
//     origin's stem, their original numbers and the primary's HELO_NAME;
//   - plain: `HELO poold-share <share id>` (the mark that it is a share: never split again),
//     the transaction's MAIL FROM, the share's RCPT TO lines, DATA, the message exactly as
//     it stands in the origin file (dot-stuffed), `.`.
// Writing is deterministic: the same share of the same file gives the same bytes, so a
// share message can be signed in one pass and written in a second.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct ShareContent: Sendable {
    public let share: PlannedShare
    public let origin: ShareOrigin
    private let job: SpoolJob
    private let path: String

    /// Share `share` of `job` (as `JobReader` read it from `path`).
    public init(_ share: PlannedShare, of job: SpoolJob, path: String, origin: ShareOrigin) throws(DistributeError) {
        let total: Int
        switch (job, share.kind) {
        case (.merge(let merge), .merge): total = merge.rowCount
        case (.bsmtp(let bsmtp, _), .bsmtp) where bsmtp.transactions.count == 1: total = bsmtp.recipientCount
        default: throw .content("share \(share.index)/\(share.count) (\(share.kind.itemName)) does not fit \(origin.name)")
        }
        guard !share.items.isEmpty, share.items.lowerBound >= 0, share.items.upperBound <= total else {
            throw .content("share \(share.index)/\(share.count) holds \(share.kind.itemName) \(share.items), outside \(origin.name)'s 0..<\(total)")
        }
        // What the peer will insist on (ShareMetadata.parse), checked before anything is sent.
        guard (try? RelayHostSyntax.checkHeloName(origin.heloName[...])) != nil else {
            throw .content("the HELO name '\(origin.heloName)' cannot be carried by a share (set HELO_NAME to a host name)")
        }
        guard ShareOrigin.isShareableStem(ShareOrigin.stem(of: origin.name)),
              origin.shareID(share).utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .content("\(origin.name) cannot be carried by a share: its id '\(origin.shareID(share))' is not printable ASCII without spaces")
        }
        self.share = share
        self.origin = origin
        self.job = job
        self.path = path
    }

    public var id: String { origin.shareID(share) }

    /// The metadata a share message for `recipient`, signed at `time`, carries.
    public func metadata(recipient: String, time: Int64) -> ShareMetadata {
        var stem = ShareOrigin.stem(of: origin.name)
        var helo = origin.heloName
        var first = share.items.lowerBound + 1
        if case .merge(let merge) = job {
            stem = merge.parameters.stem ?? stem
            helo = merge.parameters.heloName ?? helo
            first = merge.firstRowNumber + share.items.lowerBound
        }
        return ShareMetadata(id: id, job: origin.name.fileName, stem: stem, pool: origin.name.pool, heloName: helo,
                             index: share.index, count: share.count, kind: share.kind,
                             items: first...(first + share.items.count - 1), time: time, recipient: recipient)
    }

    /// Writes the share's job file to `sink`.
    public func write(to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch job {
        case .merge(let merge):
            try MergeJobWriter.writeShare(of: merge, path: path, rows: share.items,
                                          share: .init(index: share.index, count: share.count),
                                          stem: ShareOrigin.stem(of: origin.name), heloName: origin.heloName, to: sink)
        case .bsmtp(let bsmtp, let bytes):
            guard let transaction = bsmtp.transactions.first else { return }
            var head = "HELO \(BSMTPJob.shareMarker) \(id)\r\n"
            head += (["MAIL FROM:<\(transaction.sender)>"] + transaction.senderParameters).joined(separator: " ") + "\r\n"
            for recipient in transaction.recipients[share.items] {
                head += (["RCPT TO:<\(recipient.address)>"] + recipient.parameters).joined(separator: " ") + "\r\n"
            }
            head += "DATA\r\n"
            try Array(head.utf8).withUnsafeBytes { try sink($0) }
            let range = transaction.messageStart..<transaction.messageEnd
            if let bytes, range.upperBound <= Int64(bytes.count) {
                try bytes.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[Int(range.lowerBound)..<Int(range.upperBound)])) }
            } else {
                try ShareContent.copy(path: path, range: range, to: sink)
            }
            try Array(".\r\n".utf8).withUnsafeBytes { try sink($0) }
        }
    }

    /// The whole job file in memory (small shares, tests).
    public func bytes() throws -> [UInt8] {
        var out: [UInt8] = []
        try write { out.append(contentsOf: $0) }
        return out
    }

    /// Spools this share here as a new job of the origin's pool (SELF's share): written to
    /// a temporary file, checked, then linked under a fresh name. It is a share, so it is
    /// never distributed again.
    public func spool(in spool: Spool) throws -> JobName {
        try JobWriter.submit(pool: origin.name.pool, spool: spool, write: { fd in
            var buffer: [UInt8] = []
            try write { bytes in
                buffer.append(contentsOf: bytes)
                if buffer.count >= 256 * 1024 {
                    try fd.writeAll(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try fd.writeAll(buffer)
        }, check: { path in
            _ = try JobReader.read(path: path)
        })
    }

    /// Copies bytes `range` of the file at `path` to `sink`.
    static func copy(path: String, range: Range<Int64>, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset = range.lowerBound
        while offset < range.upperBound {
            let want = Int(min(Int64(buffer.count), range.upperBound - offset))
            let n = try buffer.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: offset) }
            guard n > 0 else { throw SystemError("pread", path: path, errno: EIO) }
            try buffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += Int64(n)
        }
    }
}
