// swift-tools-version:6.0
import PackageDescription

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ccat-data-transfer",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ccat", targets: ["ccat"]),
        .executable(name: "ccat-runner", targets: ["ccat-runner"]),
        // The modules holding the parsers of outside input, for the fuzz targets in Fuzz/.
        .library(name: "Topology", targets: ["Topology"]),
        .library(name: "OpsDB", targets: ["OpsDB"]),
        .library(name: "Scheduling", targets: ["Scheduling"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "Archiving", targets: ["Archiving"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // `ccat daemon --http`: the status page, /metrics and /healthz.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // System libraries. Each ships a pkg-config file on Debian; the providers name the -dev package.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CLibArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CLibCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CMunge", pkgConfig: "munge", providers: [.apt(["libmunge-dev"])]),
        // glibc functions Swift's Glibc module does not expose (declared under _GNU_SOURCE).
        .systemLibrary(name: "CGlibcExtras"),

        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: upcoming
        ),
        .target(
            name: "OpsDB",
            dependencies: ["Postgres"],
            resources: [.copy("Migrations")],
            swiftSettings: upcoming
        ),
        .target(
            name: "Topology",
            dependencies: ["OpsDB", "Postgres", .product(name: "Yams", package: "Yams"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: upcoming
        ),
        // Child processes (posix_spawn, reaped by their owner), commands with a time limit, and
        // shell quoting: for the schedulers and for the runner's rsync, bbcp and ssh.
        .target(
            name: "Processes",
            dependencies: ["CGlibcExtras", .product(name: "Subprocess", package: "swift-subprocess")],
            swiftSettings: upcoming
        ),
        .target(
            name: "Scheduling",
            dependencies: [
                "OpsDB", "Postgres", "Topology", "Processes", "CGlibcExtras",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        // Tar archives (libarchive) with SHA-256 (swift-crypto) in one pass; safe extraction.
        .target(
            name: "Archiving",
            dependencies: ["CLibArchive", "CGlibcExtras", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: upcoming
        ),
        // Where archives are kept: POSIX trees and S3 (libcurl with its SigV4 signing), verified writes.
        .target(
            name: "Storage",
            dependencies: ["Archiving", "CLibCurl", "CGlibcExtras", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: upcoming
        ),
        // What ccat-runner does on a compute node: claim, lease, execute, report.
        .target(
            name: "Runner",
            dependencies: ["OpsDB", "Postgres", "Archiving", "Storage", "Processes", "CGlibcExtras", .product(name: "Logging", package: "swift-log")],
            swiftSettings: upcoming
        ),
        // The daemon: one service per manager, leader-elected, with heartbeats (swift-service-lifecycle).
        .target(
            name: "Managers",
            dependencies: [
                "OpsDB", "Postgres", "Topology", "Scheduling", "Processes", "Auth", "CCatConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        // What the daemon shows: /metrics (swift-prometheus), /healthz, /api/v1/status and the status
        // page, served by hummingbird; and the alerts it sends (webhook, SMTP through libcurl).
        .target(
            name: "Monitor",
            dependencies: [
                "OpsDB", "Postgres", "Managers", "CCatConfig", "CLibCurl",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        // munge credentials: who sent a staging request.
        .target(
            name: "Auth",
            dependencies: ["CMunge"],
            swiftSettings: upcoming
        ),
        .target(
            name: "CCatConfig",
            dependencies: ["Postgres", .product(name: "Yams", package: "Yams")],
            swiftSettings: upcoming
        ),
        // Options, output formatting and database discovery shared by both executables.
        .target(
            name: "CCatCLI",
            dependencies: [
                "Postgres", "OpsDB", "CCatConfig", "Scheduling", "Processes", "CLibPQ", "CLibArchive", "CLibCurl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "ccat",
            dependencies: [
                "Postgres", "OpsDB", "CCatConfig", "CCatCLI", "Topology", "Managers", "Scheduling", "Processes", "Archiving", "Storage", "Auth", "Runner",
                "Monitor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "ccat-runner",
            dependencies: [
                "Postgres", "OpsDB", "CCatConfig", "CCatCLI", "Runner", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),

        // `make bench`: packaging, unpack+verify and S3 upload against tar, sha256sum, cp and aws-cli.
        .executableTarget(
            name: "ccat-bench-storage",
            dependencies: ["Archiving", "BenchSupport", "Processes", "Storage"],
            path: "bench/storage",
            swiftSettings: upcoming
        ),
        // What the benchmarks share: options, timing, a database of their own.
        .target(name: "BenchSupport", dependencies: ["OpsDB", "Postgres"], path: "bench/Support", swiftSettings: upcoming),
        // `make bench`: one cycle of each manager over 1,000,000 files.
        .executableTarget(
            name: "ccat-bench-managers",
            dependencies: ["BenchSupport", "Managers", "Monitor", "CCatConfig", "OpsDB", "Postgres", .product(name: "Logging", package: "swift-log")],
            path: "bench/managers",
            swiftSettings: upcoming
        ),
        // `make bench`: fixity against sha256sum, and an audit of 1,000,000 catalogued copies.
        .executableTarget(
            name: "ccat-bench-integrity",
            dependencies: ["BenchSupport", "OpsDB", "Postgres"],
            path: "bench/integrity",
            swiftSettings: upcoming
        ),
        // The emulated Chile-Cologne link of scripts/local-sites.sh (delay, rate and loss between two
        // network namespaces, where the kernel lacks netem); used by the tests and `make bench`'s wan.
        .executableTarget(
            name: "ccat-wan-emulator",
            dependencies: ["CGlibcExtras", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "bench/wan-emulator",
            swiftSettings: upcoming
        ),
        // `make bench`: the dispatch benchmark (not part of the test suite).
        .executableTarget(
            name: "ccat-bench-dispatch",
            dependencies: ["BenchSupport", "Scheduling", "Processes", "OpsDB", "Postgres", "Topology", .product(name: "Logging", package: "swift-log")],
            path: "bench/dispatch",
            swiftSettings: upcoming
        ),
        .testTarget(name: "RunnerTests", dependencies: ["Runner", "Storage", "Archiving", "Scheduling", "Processes", "Topology", "OpsDB", "Postgres", "TestSupport", "Managers",
                                                        "Monitor", "CCatConfig", .product(name: "Logging", package: "swift-log")], swiftSettings: upcoming),
        .testTarget(name: "ManagersTests", dependencies: ["TestSupport", "BenchSupport", "Postgres", "OpsDB", "Auth", "CCatCLI", "Scheduling", "Processes", "Managers", "Storage",
                                                         .product(name: "Crypto", package: "swift-crypto"),
                                                         .product(name: "Logging", package: "swift-log")], swiftSettings: upcoming),
        .testTarget(name: "MonitorTests", dependencies: ["Monitor", "CCatConfig", "OpsDB", "Scheduling", "TestSupport",
                                                        .product(name: "Yams", package: "Yams")], swiftSettings: upcoming),
        .testTarget(name: "ArchivingTests", dependencies: ["Archiving", "TestSupport", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: upcoming),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "Archiving", "TestSupport", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: upcoming),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "Processes", "Topology", "OpsDB", "Postgres", "TestSupport"],
                    resources: [.copy("Golden")], swiftSettings: upcoming),
        .testTarget(name: "TopologyTests", dependencies: ["Topology", "OpsDB", "Postgres", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "OpsDBTests", dependencies: ["OpsDB", "Postgres", "CCatConfig", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: upcoming),
        .target(name: "TestSupport", dependencies: ["Postgres", "Processes"], path: "Tests/TestSupport", swiftSettings: upcoming),
    ]
)
