// A delivery pool: one letter A–Z, or "-" for the default pool (MISSION.md, "The spool").
// Pools are what the first character of a job file names and what a worker's POOL= serves.

public struct Pool: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The pool's letter as an ASCII byte: `A`...`Z`, or `-`.
    public let byte: UInt8

    public static let `default` = Pool(unchecked: UInt8(ascii: "-"))
    /// Every pool, default first, in the order status and check print them.
    public static let all: [Pool] = [.default] + (UInt8(ascii: "A")...UInt8(ascii: "Z")).map(Pool.init(unchecked:))

    init(unchecked byte: UInt8) { self.byte = byte }

    /// A pool from its letter; lower case letters are taken as upper case.
    public init?(_ character: Character) {
        guard let ascii = character.asciiValue else { return nil }
        self.init(byte: ascii)
    }

    public init?(byte: UInt8) {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"): self.byte = byte
        case UInt8(ascii: "a")...UInt8(ascii: "z"): self.byte = byte - 32
        default: return nil
        }
    }

    public var description: String { String(UnicodeScalar(byte)) }

    public static func < (a: Pool, b: Pool) -> Bool {
        // The default pool sorts first.
        if a.byte == b.byte { return false }
        if a == .default { return true }
        if b == .default { return false }
        return a.byte < b.byte
    }
}

/// The pools a worker serves (`POOL=` on its line; `*`, the default, is every pool).
public struct PoolSet: Hashable, Sendable, CustomStringConvertible {
    private var bits: UInt32  // bit 0: default pool, bits 1...26: A...Z

    public static let all = PoolSet(bits: (1 << 27) - 1)
    public static let none = PoolSet(bits: 0)

    private init(bits: UInt32) { self.bits = bits }

    public init<S: Sequence>(_ pools: S) where S.Element == Pool {
        bits = 0
        for pool in pools { insert(pool) }
    }

    private static func bit(_ pool: Pool) -> UInt32 {
        pool == .default ? 1 : 1 << UInt32(pool.byte - UInt8(ascii: "A") + 1)
    }

    public mutating func insert(_ pool: Pool) { bits |= PoolSet.bit(pool) }
    public mutating func remove(_ pool: Pool) { bits &= ~PoolSet.bit(pool) }
    public func intersects(_ other: PoolSet) -> Bool { bits & other.bits != 0 }
    public func contains(_ pool: Pool) -> Bool { bits & PoolSet.bit(pool) != 0 }
    public var isAll: Bool { self == .all }
    public var isEmpty: Bool { bits == 0 }
    public var members: [Pool] { Pool.all.filter(contains) }

    /// `*` for every pool, otherwise the letters in order, `-` first (the `POOL=` syntax).
    public var description: String {
        isAll ? "*" : members.map(\.description).joined()
    }
}
