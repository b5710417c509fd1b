// What works the same with and without the TLS trait: base64 in pieces, and the crypto
// primitives either computing known answers (RFC 4231-style vectors checked against
// Python's hmac) or refusing with the error that names the missing trait.

import Foundation
import XCTest
@testable import SpoolKit

final class DistributePrimitivesTests: XCTestCase {
    func testSigningNeedsTheTLSTraitAndGivesKnownAnswersWithIt() throws {
        let key = try ShareKey(Array("0123456789abcdef".utf8))
        if ShareKey.isSigningAvailable {
            let signature = try ShareSignature(key: key)
            signature.update(Array("a".utf8))
            signature.update(Array("bc".utf8))
            XCTAssertEqual(Hex.encode(try signature.finish()), "bcaa92843247bc258080d2824bddeba4afb1bd61b4688ca65f60a214e1d9759e")
            XCTAssertEqual(try SHA256Digest.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        } else {
            XCTAssertThrowsError(try ShareSignature(key: key)) { XCTAssertEqual($0 as? DistributeError, .signingUnavailable) }
            XCTAssertThrowsError(try SHA256Digest.hex([])) { XCTAssertEqual($0 as? DistributeError, .signingUnavailable) }
        }
        XCTAssertTrue("\(DistributeError.signingUnavailable)".contains("built without TLS (the package trait TLS)"))
        XCTAssertThrowsError(try ShareKey(Array("short".utf8)))
        XCTAssertEqual("\(key)", "ShareKey(16 bytes)", "a key never shows itself")
        XCTAssertTrue(ShareSignature.matches([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(ShareSignature.matches([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(ShareSignature.matches([1, 2, 3], [1, 2]))
        XCTAssertFalse(ShareSignature.matches([], []))
    }

    func testBase64RoundTripsEveryLengthAndRefusesWhatIsNotBase64() throws {
        for length in 0...200 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + length) }
            var encoded: [UInt8] = []
            var encoder = Base64Encoder()
            bytes.withUnsafeBytes { raw in
                for start in stride(from: 0, to: raw.count, by: 7) {
                    encoder.add(UnsafeRawBufferPointer(rebasing: raw[start..<min(start + 7, raw.count)])) { encoded += $0 }
                }
            }
            encoder.finish { encoded += $0 }
            XCTAssertEqual(String(decoding: encoded, as: UTF8.self), bytes.isEmpty ? "" : Data(bytes).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n", "\(length)")
            var decoded: [UInt8] = []
            var decoder = Base64Decoder()
            let lf = encoded.filter { $0 != 13 }
            for piece in stride(from: 0, to: lf.count, by: 5) { try decoder.add(lf[piece..<min(piece + 5, lf.count)]) { decoded += $0 } }
            try decoder.finish { decoded += $0 }
            XCTAssertEqual(decoded, bytes, "\(length)")
        }
        for bad in ["QQ=A", "Q===", "QUJD=", "QUI=QUJD", "QU*D", "QUJ"] {
            var decoder = Base64Decoder()
            XCTAssertThrowsError(try { try decoder.add(Array(bad.utf8)) { _ in }; try decoder.finish { _ in } }(), bad)
        }
    }
}
