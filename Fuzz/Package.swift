// swift-tools-version:6.0
// libFuzzer targets for the parsers that take outside input. Built and run by scripts/fuzz.sh:
//   swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
// Each target's seed corpus is in Fuzz/corpus/<target>/.
import PackageDescription

let targets = [
    ("FuzzTopology", ["Topology"]),
    ("FuzzRegistrationLines", ["OpsDB"]),
    ("FuzzSlurmOutput", ["Scheduling"]),
    ("FuzzSbatchScript", ["Scheduling"]),
    ("FuzzS3XML", ["Storage"]),
    ("FuzzTarArchive", ["Archiving"]),
]

let package = Package(
    name: "ccat-fuzz",
    products: targets.map { .executable(name: $0.0, targets: [$0.0]) },
    dependencies: [.package(name: "ccat-data-transfer", path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"]),
    ] + targets.map { name, modules in
        .executableTarget(name: name, dependencies: ["FuzzSupport"] + modules.map { .product(name: $0, package: "ccat-data-transfer") })
    }
)
