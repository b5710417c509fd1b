// Whether a job is distributed, and how it is cut (MISSION.md, "Distribute workers"). Pure:
// no file is read, no clock asked; the same job and settings always give the same plan.
//   - A merge job is cut by rows; a plain job by the recipients of its one transaction.
//     A plain job with several transactions is never split (each transaction is its own
//     message with its own envelope; splitting them is left to the list software).
//   - A job is distributed only when it has at least DIST_FORWARD_THRESHOLD rows or
//     recipients AND its template (merge) or message (plain) is at least
//     DIST_FORWARD_MINSIZE kB; a received share (`SHARE=` in a merge job, the
//     `HELO poold-share` line in a plain one) never is.
//   - The cut: contiguous slices in the peers' stable order, sized by largest remainder, so
//     each peer's count is within one of its exact share (count × weight / total). Empty
//     slices are dropped; the rest are numbered 1...n in that order. SELF's slice stays here.

public enum ShareKind: String, Sendable, Hashable {
    /// Rows of a merge job.
    case merge
    /// Recipients of a plain (BSMTP) job's one transaction.
    case bsmtp

    /// What a slice of this kind holds, for messages and headers ("rows", "recipients").
    public var itemName: String { self == .merge ? "rows" : "recipients" }
}

/// One slice of a distributed job.
public struct PlannedShare: Hashable, Sendable {
    /// 1...count, in the peers' stable order.
    public var index: Int
    public var count: Int
    public var peer: DistributePeer
    public var kind: ShareKind
    /// The rows (merge) or recipients (plain) it holds: 0-based positions in the origin job.
    public var items: Range<Int>

    public init(index: Int, count: Int, peer: DistributePeer, kind: ShareKind, items: Range<Int>) {
        self.index = index
        self.count = count
        self.peer = peer
        self.kind = kind
        self.items = items
    }

    /// SELF's share: spooled here, never mailed.
    public var isLocal: Bool { peer == .local }
}

/// Why a job is delivered here whole.
public enum KeepReason: Hashable, Sendable, CustomStringConvertible {
    /// DIST_FORWARD is not set.
    case notForwarding
    /// The job is itself a received share (a worker cannot delegate).
    case isShare
    /// A plain job with more than one transaction.
    case severalTransactions(Int)
    /// Fewer rows or recipients than DIST_FORWARD_THRESHOLD.
    case belowThreshold(count: Int, threshold: Int)
    /// A template or message smaller than DIST_FORWARD_MINSIZE (sizes in bytes).
    case belowMinimumSize(size: Int64, minimum: Int64)
    /// A stem that cannot travel as `STEM=` (see `ShareOrigin.isShareableStem`).
    case unshareableStem(String)

    public var description: String {
        switch self {
        case .notForwarding: return "DIST_FORWARD is not set"
        case .isShare: return "a received share is never distributed again"
        case .severalTransactions(let n): return "a plain job with \(n) transactions is not split"
        case .belowThreshold(let count, let threshold): return "\(count) below DIST_FORWARD_THRESHOLD=\(threshold)"
        case .belowMinimumSize(let size, let minimum): return "\(size) bytes, below DIST_FORWARD_MINSIZE (\(minimum / 1024) kB)"
        case .unshareableStem(let stem): return "the stem '\(stem)' cannot be carried by a share"
        }
    }
}

public enum DistributeDecision: Hashable, Sendable {
    case keep(KeepReason)
    /// Every share, SELF's included (if it has one), in order; at least one is remote.
    case distribute([PlannedShare])
}

public enum DistributePlan {
    /// The decision for `job` (checked by `JobReader`), named `name`, under `settings`.
    public static func decide(job: SpoolJob, name: JobName, settings: DistributeSettings) -> DistributeDecision {
        guard settings.isForwarding else { return .keep(.notForwarding) }
        let kind: ShareKind
        let count: Int
        let size: Int64
        switch job {
        case .merge(let merge):
            if merge.parameters.share != nil { return .keep(.isShare) }
            kind = .merge
            count = merge.rowCount
            size = Int64(merge.template.size)
        case .bsmtp(let bsmtp, _):
            if bsmtp.isShare { return .keep(.isShare) }
            guard bsmtp.transactions.count == 1, let transaction = bsmtp.transactions.first else {
                return .keep(.severalTransactions(bsmtp.transactions.count))
            }
            kind = .bsmtp
            count = transaction.recipients.count
            size = transaction.wireSize
        }
        if count < settings.threshold { return .keep(.belowThreshold(count: count, threshold: settings.threshold)) }
        let minimum = Int64(settings.minimumSizeKB) * 1024
        if size < minimum { return .keep(.belowMinimumSize(size: size, minimum: minimum)) }
        let stem = ShareOrigin.stem(of: name)
        guard ShareOrigin.isShareableStem(stem) else { return .keep(.unshareableStem(stem)) }
        let shares = split(count: count, kind: kind, peers: settings.peers)
        guard shares.contains(where: { !$0.isLocal }) else {
            return .keep(.belowThreshold(count: count, threshold: settings.threshold))
        }
        return .distribute(shares)
    }

    /// `count` items cut among `peers` by largest remainder: contiguous, in the peers'
    /// order, empty slices dropped, numbered 1...n.
    public static func split(count: Int, kind: ShareKind, peers: [WeightedPeer]) -> [PlannedShare] {
        let sizes = apportion(count, weights: peers.map(\.weight))
        let nonEmpty = zip(peers, sizes).filter { $0.1 > 0 }
        var shares: [PlannedShare] = []
        var start = 0
        for (i, (peer, size)) in nonEmpty.enumerated() {
            shares.append(PlannedShare(index: i + 1, count: nonEmpty.count, peer: peer.peer, kind: kind,
                                       items: start..<(start + size)))
            start += size
        }
        return shares
    }

    /// Hamilton's method: each weight gets floor(count × weight / total), and the items
    /// left over go one each to the largest remainders (ties: the earlier peer). The sizes
    /// add up to `count`, and each is within one of its exact share. All weights 0: all 0.
    public static func apportion(_ count: Int, weights: [Int]) -> [Int] {
        let total = weights.reduce(0, +)
        guard count > 0, total > 0 else { return weights.map { _ in 0 } }
        var sizes: [Int] = []
        var remainders: [(remainder: Int, index: Int)] = []
        for (index, weight) in weights.enumerated() {
            // count × weight / total without overflow, whatever the count.
            let (quotient, remainder) = total.dividingFullWidth(count.multipliedFullWidth(by: weight))
            sizes.append(quotient)
            remainders.append((remainder, index))
        }
        let left = count - sizes.reduce(0, +)
        let order = remainders.sorted { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.index < $1.index }
        for entry in order.prefix(left) { sizes[entry.index] += 1 }
        return sizes
    }
}

extension BSMTPJob {
    /// The word after HELO that marks a received plain share (and a share message waiting
    /// in the primary's spool): `HELO poold-share <share id>`.
    public static let shareMarker = "poold-share"

    /// The share id of a share job (the word after the marker), nil for any other job.
    public var shareID: String? {
        guard isShare, let hello else { return nil }
        let words = hello.split(separator: " ")
        return words.count > 1 ? String(words[1]) : nil
    }

    /// True for a job written by `poolctl receive` or by `ShareMessage.writeJob`: never split.
    public var isShare: Bool {
        guard let hello else { return false }
        return hello.split(separator: " ").first.map(String.init) == BSMTPJob.shareMarker
    }
}
