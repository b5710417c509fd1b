// The Distribute keys of a site configuration (MISSION.md, "Distribute workers"):
//   DIST_FORWARD="SELF 2*poold@dist1.example.org dist2.example.org"
//   DIST_FORWARD_THRESHOLD=100   DIST_FORWARD_MINSIZE=0   DIST_SECRET=/etc/poold/dist.key
// Invariants after parsing: every peer is SELF or a sendable address; each peer appears
// once (a peer listed twice has its weights added), in the order of its first mention,
// SELF first when it is not listed (weight 1); only SELF may weigh 0; at least one peer
// other than SELF has a weight; DIST_FORWARD comes with DIST_SECRET.

/// One participant in a distributed job.
public enum DistributePeer: Hashable, Sendable, CustomStringConvertible {
    /// This instance: its share is spooled here.
    case local
    /// Another instance, reached by mail at this address (its MTA pipes it to `poolctl receive`).
    case remote(address: String)

    public var description: String {
        switch self {
        case .local: return "SELF"
        case .remote(let address): return address
        }
    }

    /// The local part a bare host name stands for (`dist1.example.org` is `poold@dist1.example.org`).
    public static let defaultLocalPart = "poold"
}

public struct WeightedPeer: Hashable, Sendable {
    public var peer: DistributePeer
    /// 0 only for SELF (`0*SELF`).
    public var weight: Int

    public init(_ peer: DistributePeer, weight: Int) {
        self.peer = peer
        self.weight = weight
    }
}

public struct DistributeSettings: Hashable, Sendable, CustomStringConvertible {
    /// DIST_FORWARD, in stable order (empty: this instance distributes nothing).
    public var peers: [WeightedPeer] = []
    /// DIST_FORWARD_THRESHOLD: the fewest rows (merge job) or recipients (plain job) a job
    /// needs to be distributed.
    public var threshold = 100
    /// DIST_FORWARD_MINSIZE: the smallest template (merge job) or message (plain job), in kB,
    /// a job needs to be distributed; 0: no minimum.
    public var minimumSizeKB = 0
    /// DIST_SECRET: the file holding the key shared with the peers. A peer that only
    /// receives shares needs this key and no DIST_FORWARD.
    public var secretFile: String?
    /// The line of DIST_FORWARD, for messages that name it.
    public var line: Int?

    /// The heaviest a single peer may weigh (weights of a peer listed twice included).
    public static let maxWeight = 1000
    /// The most peers DIST_FORWARD may name.
    public static let maxPeers = 100
    public static let defaultThreshold = 100

    public init() {}

    /// True when DIST_FORWARD is set: large jobs are split among the peers.
    public var isForwarding: Bool { !peers.isEmpty }

    /// SELF's weight (0 with `0*SELF`).
    public var localWeight: Int { peers.first { $0.peer == .local }?.weight ?? 0 }

    /// `SELF 2*poold@dist1.example.org poold@dist2.example.org`: the list as it is used.
    public var description: String {
        peers.map { $0.weight == 1 ? $0.peer.description : "\($0.weight)*\($0.peer)" }.joined(separator: " ")
    }
}

enum DistributeSyntax {
    /// The value of DIST_FORWARD: space-separated `[n*]peer`.
    static func peers(_ text: Substring) throws(ConfigurationFault) -> [WeightedPeer] {
        var peers: [WeightedPeer] = []
        var selfListed = false
        for word in ConfigurationText.words(text) {
            var weight = 1
            var peerText = word
            if let star = word.firstIndex(of: "*") {
                let number = word[..<star]
                guard ConfigurationText.isDigits(number), let n = Int(number), n <= DistributeSettings.maxWeight else {
                    throw ConfigurationFault("'\(word)': the weight before '*' must be a number 0...\(DistributeSettings.maxWeight)")
                }
                weight = n
                peerText = word[word.index(after: star)...]
            }
            let peer = try self.peer(peerText, in: word)
            if weight == 0 && peer != .local {
                throw ConfigurationFault("'\(word)': only SELF may have weight 0 (leave a peer out instead)")
            }
            if peer == .local { selfListed = true }
            if let i = peers.firstIndex(where: { $0.peer == peer }) {
                peers[i].weight += weight
                guard peers[i].weight <= DistributeSettings.maxWeight else {
                    throw ConfigurationFault("\(peer) weighs \(peers[i].weight) in all, more than \(DistributeSettings.maxWeight)")
                }
            } else {
                peers.append(WeightedPeer(peer, weight: weight))
            }
        }
        guard !peers.isEmpty else { throw ConfigurationFault("no peer given (write e.g. SELF 2*poold@dist1.example.org)") }
        if !selfListed { peers.insert(WeightedPeer(.local, weight: 1), at: 0) }
        guard peers.count <= DistributeSettings.maxPeers else {
            throw ConfigurationFault("\(peers.count) peers, more than \(DistributeSettings.maxPeers)")
        }
        guard peers.contains(where: { $0.peer != .local }) else {
            throw ConfigurationFault("no peer but SELF: name at least one other instance (an address or a host name)")
        }
        return peers
    }

    /// `SELF`, `poold@dist1.example.org` or `dist1.example.org` (meaning `poold@dist1.example.org`).
    /// The domain is lower-cased so that two spellings of one peer are one peer.
    static func peer(_ text: Substring, in word: Substring) throws(ConfigurationFault) -> DistributePeer {
        guard !text.isEmpty else { throw ConfigurationFault("'\(word)' names no peer after '*'") }
        if text.uppercased() == "SELF" { return .local }
        let local: Substring
        let domain: Substring
        if let at = text.lastIndex(of: "@") {
            local = text[..<at]
            domain = text[text.index(after: at)...]
            if let problem = EnvelopeSyntax.problem(address: text, allowNull: false) {
                throw ConfigurationFault("'\(text)' is not an address: \(problem)")
            }
            // The envelope check lets odd list addresses through; a peer is ours to name.
            if local.isEmpty || (local.contains("@") && local.first != "\"") {
                throw ConfigurationFault("'\(text)' is not an address: '\(local)' is not a local part")
            }
        } else {
            local = Substring(DistributePeer.defaultLocalPart)
            domain = text
        }
        let isLiteral = domain.first == "["
        let hostOK: Bool
        if isLiteral {
            hostOK = (try? RelayHostSyntax.checkHeloName(domain)) != nil
        } else {
            hostOK = RelayHostSyntax.isDomainName(domain, allowUnderscore: false)
        }
        guard hostOK else {
            throw ConfigurationFault("'\(text)' is not a peer: '\(domain)' is not a host name (write SELF, an address or a host name)")
        }
        let address = "\(local)@\(isLiteral ? String(domain) : domain.lowercased())"
        guard address.utf8.allSatisfy({ $0 < 128 }) else {
            throw ConfigurationFault("'\(text)': a peer's address must be ASCII (it travels in a header of every share)")
        }
        if let problem = EnvelopeSyntax.problem(address: address, allowNull: false) {
            throw ConfigurationFault("'\(text)' is not an address: \(problem)")
        }
        return .remote(address: address)
    }

    /// DIST_FORWARD_MINSIZE: a whole number of kB, 0 allowed.
    static func kilobytes(_ text: Substring) throws(ConfigurationFault) -> Int {
        guard ConfigurationText.isDigits(text), let number = Int(text), number <= 1 << 40 else {
            throw ConfigurationFault("'\(text)' is not a size in kB (a whole number, 0 for no minimum)")
        }
        return number
    }
}
