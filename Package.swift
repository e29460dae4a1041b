// swift-tools-version:6.0
import PackageDescription

// Dependency graph (arrows point one way):
//   edgebuf (CLI) -> EdgeDoctor -> EdgeUplink, EdgeDownlink -> EdgeTransport -> CCurl
//                 -> EdgeIngest (NIOHTTP1) -> EdgeBuffer -> EdgeStore -> CSQLite
let package = Package(
    name: "edgebuf",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "edgebuf", targets: ["edgebuf"]),
        .executable(name: "edgebuf-bench", targets: ["edgebuf-bench"]),
        .library(name: "EdgeBuffer", targets: ["EdgeBuffer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // SHA-256 for the audit chain and HMAC-SHA256 for IoTDA device auth: an audited
        // implementation beats hand-written crypto.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The local ingest server: NIOHTTP1 parses HTTP/1.1 (llhttp inside), so edgebuf never
        // parses requests by hand; see EdgeIngest.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTPS for ingest off loopback (its own BoringSSL: libcurl's OpenSSL is not reachable
        // from NIO).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CPosix"),
        .target(
            name: "EdgeStore",
            dependencies: [
                "CSQLite",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["EmbedMigrations"]
        ),
        .executableTarget(name: "embed-migrations"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["embed-migrations"]),
        .target(
            name: "EdgeBuffer",
            dependencies: [
                "EdgeStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .target(
            name: "EdgeTransport",
            dependencies: ["CCurl", .product(name: "Logging", package: "swift-log")],
            exclude: ["README.md"]
        ),
        .target(
            name: "EdgeUplink",
            dependencies: [
                "EdgeBuffer", "EdgeStore", "EdgeTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "EdgeDownlink",
            dependencies: [
                "EdgeBuffer", "EdgeStore", "EdgeTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "EdgeIngest",
            dependencies: [
                "EdgeBuffer", "EdgeStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "EdgeDoctor",
            dependencies: [
                "EdgeBuffer", "EdgeStore", "EdgeTransport", "EdgeUplink", "EdgeDownlink",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "edgebuf",
            dependencies: [
                "EdgeBuffer",
                "EdgeStore",
                "EdgeUplink",
                "EdgeDownlink",
                "EdgeDoctor",
                "EdgeIngest",
                "CPosix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "edgebuf-bench",
            dependencies: [
                "EdgeBuffer", "EdgeStore", "EdgeUplink", "EdgeDownlink", "EdgeTransport", "CSQLite", "CCurl",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "EdgeStoreTests", dependencies: ["EdgeStore", "TestSupport"]),
        .testTarget(name: "EdgeBufferTests", dependencies: ["EdgeBuffer", "EdgeStore", "TestSupport"]),
        .testTarget(name: "EdgeTransportTests", dependencies: ["EdgeTransport"]),
        .testTarget(name: "EdgeUplinkTests", dependencies: ["EdgeUplink", "EdgeBuffer", "EdgeStore", "TestSupport"]),
        .testTarget(name: "EdgeDownlinkTests", dependencies: ["EdgeDownlink", "EdgeStore", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
        .testTarget(name: "UplinkIntegrationTests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
        .testTarget(name: "DownlinkIntegrationTests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
        .testTarget(name: "DoctorTests", dependencies: ["edgebuf", "EdgeDoctor", "EdgeStore", "TestSupport"]),
        .testTarget(name: "EdgeIngestTests", dependencies: ["EdgeIngest", "EdgeBuffer", "EdgeStore", "TestSupport"]),
        .testTarget(name: "IngestTests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
        .testTarget(name: "ProofTests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["edgebuf", "EdgeStore", "TestSupport"]),
    ]
)
