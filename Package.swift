// swift-tools-version: 6.1
// poold: an outbound delivery daemon for mailing-list servers. No package dependencies
// (the user's requirement): the toolchain's own modules only, plus the system's OpenSSL
// (libssl-dev) behind the trait `TLS`, on by default. `swift build --disable-default-traits`
// builds without it: sessions that ask for TLS then fail with "built without TLS", and
// Distribute shares cannot be signed or checked (HMAC-SHA256 comes from libcrypto).
import PackageDescription

let package = Package(
    name: "poold",
    products: [
        .executable(name: "poold", targets: ["PoolDaemon"]),
        .executable(name: "poolctl", targets: ["poolctl"]),
        .library(name: "SpoolKit", targets: ["SpoolKit"]),
        .library(name: "SMTPClient", targets: ["SMTPClient"]),
    ],
    traits: [
        .trait(name: "TLS", description: "STARTTLS, SMTPS and certificate verification through the system's OpenSSL"),
        .default(enabledTraits: ["TLS"]),
    ],
    targets: [
        // SpoolKit signs and checks Distribute shares with libcrypto's HMAC-SHA256.
        .target(name: "SpoolKit",
                dependencies: [.target(name: "COpenSSL", condition: .when(traits: ["TLS"]))],
                exclude: ["README.md"]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // glibc's stub resolver (libresolv) for MX resolution: part of libc6-dev, always there.
        .systemLibrary(name: "CResolv"),
        .target(name: "SMTPClient",
                dependencies: ["CResolv", .target(name: "COpenSSL", condition: .when(traits: ["TLS"]))]),
        .executableTarget(name: "PoolDaemon", dependencies: ["SpoolKit", "SMTPClient"]),
        .executableTarget(name: "poolctl", dependencies: ["SpoolKit"]),
        .testTarget(name: "SpoolKitTests", dependencies: ["SpoolKit"]),
        .testTarget(name: "SMTPClientTests", dependencies: ["SMTPClient"]),
        .testTarget(name: "PoolDaemonTests", dependencies: ["PoolDaemon", "SpoolKit", "SMTPClient"]),
    ],
    swiftLanguageModes: [.v6]
)
