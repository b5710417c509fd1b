// The key shared by every instance of a Distribute setup (DIST_SECRET), and the two
// primitives that use it, both from the system's libcrypto through the `TLS` trait:
// HMAC-SHA256 (streaming, for a share's signature) and SHA-256 (names in the replay store).
// The key file is refused when it cannot be read, is not a regular file, can be read or
// written by group or others (mode & 0o077, as SECRET= of a worker line), or its first
// line is shorter than `ShareKey.minimumLength`. Without the TLS trait there is no
// libcrypto: signing and checking throw `DistributeError.signingUnavailable`.

#if TLS
import COpenSSL
#endif

/// What goes wrong with the Distribute setup or a share's content.
public enum DistributeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Built without the TLS trait: no HMAC-SHA256.
    case signingUnavailable
    /// The DIST_SECRET file cannot be used.
    case secretFile(path: String, problem: String)
    /// libcrypto failed (out of memory, a broken installation).
    case crypto(String)
    /// A share does not fit its job (a merge share of a plain job, rows out of range).
    case content(String)

    public var description: String {
        switch self {
        case .signingUnavailable:
            return "poold was built without TLS (the package trait TLS), which brings the HMAC-SHA256 that signs and checks Distribute shares: DIST_FORWARD and poolctl receive need it"
        case .secretFile(let path, let problem): return "DIST_SECRET \(path) \(problem)"
        case .crypto(let message): return "libcrypto: \(message)"
        case .content(let message): return message
        }
    }
}

/// The shared key: the first line of the DIST_SECRET file (a final CR dropped).
public struct ShareKey: Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    /// The shortest key accepted (`openssl rand -base64 32` gives 44 characters).
    public static let minimumLength = 16

    /// True when this build can sign and check shares (the TLS trait is on).
    public static var isSigningAvailable: Bool {
        #if TLS
        return true
        #else
        return false
        #endif
    }

    /// A key from bytes (tests); at least `minimumLength` of them.
    public init(_ bytes: [UInt8]) throws(DistributeError) {
        guard bytes.count >= ShareKey.minimumLength else {
            throw .secretFile(path: "(given)", problem: "holds a key of \(bytes.count) bytes, fewer than \(ShareKey.minimumLength)")
        }
        self.bytes = bytes
    }

    /// Never shows the key.
    public var description: String { "ShareKey(\(bytes.count) bytes)" }
    public var length: Int { bytes.count }

    /// Reads and checks the key file at `path`.
    public static func load(path: String) throws(DistributeError) -> ShareKey {
        let status: FileStatus
        let content: [UInt8]
        do {
            status = try FileSystem.status(path)
            guard status.isRegular else { throw DistributeError.secretFile(path: path, problem: "is not a file") }
            if status.mode & 0o077 != 0 {
                throw DistributeError.secretFile(path: path, problem: "can be read or written by group or others (mode \(String(status.mode, radix: 8))): chmod 600 it")
            }
            content = try FileSystem.readAll(path)
        } catch let error as DistributeError {
            throw error
        } catch {
            throw .secretFile(path: path, problem: "cannot be read: \(error)")
        }
        var first = content.prefix { $0 != 10 }
        if first.last == 13 { first.removeLast() }
        guard !first.isEmpty else { throw .secretFile(path: path, problem: "is empty (its first line must be the key)") }
        guard first.count >= minimumLength else {
            throw .secretFile(path: path, problem: "holds a key of \(first.count) bytes, fewer than \(minimumLength) (make one with: openssl rand -base64 32)")
        }
        return ShareKey(unchecked: Array(first))
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }
}

extension SiteConfiguration {
    /// The Distribute setup's faults poold refuses to start with, and `poolctl check`
    /// reports: DIST_FORWARD in a build without TLS, a DIST_SECRET file that cannot be used.
    /// Returns the key when DIST_SECRET is set (a peer that only receives needs it too).
    public func checkDistribute() throws(DistributeError) -> ShareKey? {
        if distribute.isForwarding && !ShareKey.isSigningAvailable { throw .signingUnavailable }
        guard let path = distribute.secretFile else { return nil }
        return try ShareKey.load(path: path)
    }
}

/// HMAC-SHA256 over bytes fed in pieces.
public final class ShareSignature {
    public static let length = 32
    #if TLS
    private let context: OpaquePointer
    #endif

    public init(key: ShareKey) throws(DistributeError) {
        #if TLS
        guard let context = key.bytes.withUnsafeBufferPointer({ poold_hmac_sha256_new($0.baseAddress, $0.count) }) else {
            throw .crypto("cannot set up HMAC-SHA256")
        }
        self.context = context
        #else
        throw .signingUnavailable
        #endif
    }

    deinit {
        #if TLS
        EVP_MAC_CTX_free(context)
        #endif
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        #if TLS
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = EVP_MAC_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        #endif
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The 32-byte MAC; the context is spent.
    public func finish() throws(DistributeError) -> [UInt8] {
        #if TLS
        var out = [UInt8](repeating: 0, count: ShareSignature.length)
        var length = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_MAC_final(context, $0.baseAddress, &length, $0.count) }
        guard ok == 1, length == ShareSignature.length else { throw .crypto("HMAC-SHA256 did not finish") }
        return out
        #else
        throw .signingUnavailable
        #endif
    }

    /// Equal MACs, compared in constant time.
    public static func matches(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, !a.isEmpty else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

public enum SHA256Digest {
    /// SHA-256 of `bytes`, in lower-case hex.
    public static func hex(_ bytes: [UInt8]) throws(DistributeError) -> String {
        #if TLS
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { EVP_Digest(input.baseAddress, input.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        guard ok == 1, length == 32 else { throw .crypto("SHA-256 failed") }
        return Hex.encode(digest)
        #else
        throw .signingUnavailable
        #endif
    }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower- or upper-case hex; nil for anything else.
    static func decode(_ text: Substring) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            guard let high = value(bytes[i]), let low = value(bytes[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}
