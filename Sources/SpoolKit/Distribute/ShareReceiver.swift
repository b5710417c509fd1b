// `poolctl receive`: one share message in, one job spooled (or none), one outcome out.
//   1. The header block gives the metadata (ShareMetadata) and the signature.
//   2. The base64 body is decoded into a temporary file in the spool (a name the daemon
//      ignores) and into the HMAC at once; the job is never held in memory.
//   3. Signature, then freshness, then the job itself (checked whole, as the daemon will,
//      and against the metadata), then the replay record.
//   4. The job is linked under `<pool>share-<32 hex of SHA-256(share id)>.MAIL`: one name per
//      share, so a second copy that arrives while the first is queued meets EEXIST; then
//      the record is written. A crash between the two, and the daemon finishing the job
//      before the MTA retries, spools the share twice: a duplicate, never a loss. Writing
//      the record first would turn that crash into a loss.
// Outcomes and statuses (sysexits): spooled or already spooled 0; `ShareFault.malformed` 65;
// `.refused` 77; `.temporary` 75 (the MTA keeps the message and retries).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum ReceiveOutcome: Sendable, Equatable {
    /// Spooled as `job`; `warning` says what went wrong after the job was safe (the record).
    case spooled(job: JobName, metadata: ShareMetadata, warning: String?)
    /// Spooled before: nothing done.
    case alreadySpooled(metadata: ShareMetadata)
}

public struct ShareReceiver {
    public let spool: Spool
    public let key: ShareKey
    public var freshness = ShareFreshness()
    public var replayStore: ReplayStore

    public init(spool: Spool, key: ShareKey) {
        self.spool = spool
        self.key = key
        replayStore = ReplayStore(spool: spool)
    }

    /// Reads one share from `input` and spools it; `now` is seconds since the epoch.
    public func receive(_ input: ShareInput, now: Int64) throws(ShareFault) -> ReceiveOutcome {
        var reader = ShareMessageReader(input)
        let fields = try reader.headers()
        guard fields[ShareMetadata.Field.version.lowercased()] != nil else {
            throw .malformed("not a poold share (no \(ShareMetadata.Field.version) header)")
        }
        let metadata = try ShareMetadata.parse(fields).get()
        guard let signatureText = fields[ShareMetadata.Field.signature.lowercased()] else {
            throw .refused("share \(metadata.id): no \(ShareMetadata.Field.signature) header")
        }
        let signatureParts = signatureText.split(whereSeparator: { $0 == " " || $0 == "\t" })  // a relay may fold it
        guard signatureParts.count == 2, signatureParts[0].lowercased() == "hmac-sha256",
              let expected = Hex.decode(signatureParts[1]), expected.count == ShareSignature.length else {
            throw .refused("share \(metadata.id): \(ShareMetadata.Field.signature) is not 'hmac-sha256 <64 hex digits>'")
        }
        let signature: ShareSignature
        do { signature = try ShareSignature(key: key) } catch { throw .temporary("\(error)") }
        signature.update(metadata.canonical)

        let temporary = AtomicFile.temporaryPath(in: spool.root, for: "share")
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: 0o640)
        } catch {
            throw .temporary("cannot write in the spool: \(error)")
        }
        defer { try? FileSystem.unlink(temporary, missingOK: true) }
        do throws(ShareFault) {
            try decode(&reader, into: fd, signature: signature)
            fd.close()
        } catch {
            fd.close()
            throw error
        }

        let mac: [UInt8]
        do { mac = try signature.finish() } catch { throw .temporary("\(error)") }
        guard ShareSignature.matches(mac, expected) else {
            throw .refused("share \(metadata.id): bad signature (changed on the way, or signed with another key)")
        }
        if let problem = freshness.problem(time: metadata.time, now: now) {
            throw .refused("share \(metadata.id): \(problem)")
        }
        try check(temporary, against: metadata)
        do {
            if try replayStore.contains(id: metadata.id) { return .alreadySpooled(metadata: metadata) }
        } catch {
            throw .temporary("cannot read the replay record in \(replayStore.directory): \(error)")
        }
        let name = try jobName(for: metadata)
        do {
            try FileSystem.link(temporary, spool.path(of: name, in: .queued))
            try FileSystem.syncDirectory(spool.root)
            JobWriter.announce(spool.path(of: name, in: .queued))
        } catch let error as SystemError where error.isExisting {
            return .alreadySpooled(metadata: metadata)
        } catch {
            throw .temporary("cannot spool \(name): \(error)")
        }
        var warning: String?
        do {
            try replayStore.record(id: metadata.id, job: name, time: metadata.time)
        } catch {
            warning = "the job is spooled, but its replay record could not be written (a redelivery would spool it again): \(error)"
        }
        replayStore.sweep(lifetime: freshness.recordLifetime, now: Double(now))
        return .spooled(job: name, metadata: metadata, warning: warning)
    }

    /// Decodes the base64 body into `fd` and the signature; the file is fsynced.
    private func decode(_ reader: inout ShareMessageReader, into fd: FileDescriptor, signature: ShareSignature) throws(ShareFault) {
        var decoder = Base64Decoder()
        var buffer: [UInt8] = []
        let write: (UnsafeRawBufferPointer) throws -> Void = { bytes in
            signature.update(bytes)
            buffer.append(contentsOf: bytes)
            if buffer.count >= 256 * 1024 {
                try fd.writeAll(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        do {
            try reader.body { piece in try decoder.add(piece, write) }
            try decoder.finish(write)
            try fd.writeAll(buffer)
            try fd.sync()
        } catch let fault as Base64Decoder.Fault {
            throw .malformed("the body is not base64: \(fault)")
        } catch let fault as ShareFault {
            throw fault
        } catch {
            throw .temporary("cannot write the share in the spool: \(error)")
        }
    }

    /// The job in `path` must be valid and be the share its headers describe.
    private func check(_ path: String, against metadata: ShareMetadata) throws(ShareFault) {
        let job: SpoolJob
        do {
            job = try JobReader.read(path: path)
        } catch let error as SystemError {
            throw .temporary("cannot read the share back from the spool: \(error)")
        } catch {
            throw .malformed("share \(metadata.id): its job is not valid: \(error)")
        }
        let mismatch: String?
        switch (job, metadata.kind) {
        case (.merge(let merge), .merge):
            let p = merge.parameters
            if p.share != MergeParameters.Share(index: metadata.index, count: metadata.count) {
                mismatch = "SHARE= does not say \(metadata.index)/\(metadata.count)"
            } else if p.stem != metadata.stem || p.heloName != metadata.heloName {
                mismatch = "STEM= or HELO= differ from the headers"
            } else if merge.rowNumbers != metadata.items {
                mismatch = "its rows \(merge.rowNumbers.lowerBound)-\(merge.rowNumbers.upperBound) differ from the headers"
            } else {
                mismatch = nil
            }
        case (.bsmtp(let bsmtp, _), .bsmtp):
            if bsmtp.hello != "\(BSMTPJob.shareMarker) \(metadata.id)" {
                mismatch = "it does not begin with HELO \(BSMTPJob.shareMarker) \(metadata.id)"
            } else if bsmtp.transactions.count != 1 || bsmtp.recipientCount != metadata.items.count {
                mismatch = "it is not one transaction of \(metadata.items.count) recipients"
            } else {
                mismatch = nil
            }
        default:
            mismatch = "it is not a \(metadata.kind) job"
        }
        if let mismatch { throw .malformed("share \(metadata.id): its job does not match its headers: \(mismatch)") }
    }

    /// `<pool>share-<32 hex>.MAIL`.
    private func jobName(for metadata: ShareMetadata) throws(ShareFault) -> JobName {
        let digest: String
        do { digest = try SHA256Digest.hex(Array(metadata.id.utf8)) } catch { throw .temporary("\(error)") }
        guard let name = JobName("\(metadata.pool)share-\(digest.prefix(32))\(JobName.suffix)") else {
            throw .malformed("share \(metadata.id): no job name for pool \(metadata.pool)")
        }
        return name
    }
}
