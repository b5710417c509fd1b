// swift-tools-version: 6.1
// poold: an outbound delivery daemon for mailing-list servers. No package dependencies
// (the user's requirement): the toolchain's own modules only.
import PackageDescription

let package = Package(
    name: "poold",
    products: [
        .executable(name: "poold", targets: ["PoolDaemon"]),
        .executable(name: "poolctl", targets: ["poolctl"]),
        .library(name: "SpoolKit", targets: ["SpoolKit"]),
        .library(name: "SMTPClient", targets: ["SMTPClient"]),
    ],
    targets: [
        .target(name: "SpoolKit"),
        .target(name: "SMTPClient"),
        .executableTarget(name: "PoolDaemon", dependencies: ["SpoolKit", "SMTPClient"]),
        .executableTarget(name: "poolctl", dependencies: ["SpoolKit"]),
        .testTarget(name: "SpoolKitTests", dependencies: ["SpoolKit"]),
        .testTarget(name: "SMTPClientTests", dependencies: ["SMTPClient"]),
        .testTarget(name: "PoolDaemonTests", dependencies: ["PoolDaemon", "SpoolKit", "SMTPClient"]),
    ],
    swiftLanguageModes: [.v6]
)
