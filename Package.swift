// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-qemu-launch",
    // Linux only, for now: QEMULaunch, GuestKit and `launch` stop the build elsewhere with
    // one #error (Sources/QEMULaunch/Platform.swift). macOS is a plan (README
    // "Platforms"); this line only sets the Duration/Mutex baseline QMP's code needs there.
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QMP", targets: ["QMP"]),
        .library(name: "QEMULaunch", targets: ["QEMULaunch"]),
        .library(name: "GuestKit", targets: ["GuestKit"]),
        .library(name: "LaunchBatch", targets: ["LaunchBatch"]),
        .executable(name: "launch", targets: ["launch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        // `swift package generate-documentation --target GuestKit`: the DocC catalogs.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Spawning children with a parent-death signal, an exact fd map and a new
        // session: the one thing Foundation's Process and swift-subprocess can't do.
        .target(name: "CLaunchShim"),
        // Sockets, errno, threads and atomic file writes: the one POSIX layer QMP and
        // QEMULaunch share (package access; no product, nothing for importers).
        .target(name: "LaunchSupport"),
        .target(
            name: "QMP",
            dependencies: ["LaunchSupport", .product(name: "Logging", package: "swift-log")],
            exclude: ["README.md"]
        ),
        .target(
            name: "QEMULaunch",
            dependencies: [
                "QMP", "CLaunchShim", "LaunchSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        .target(
            name: "GuestKit",
            dependencies: [
                "QEMULaunch", "QMP", "LaunchSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // Job manifests, shards and JUnit/JSON reports: the pure parts of `launch batch`,
        // a leaf (Foundation only) so a Swift CI harness can read and write the same files.
        .target(name: "LaunchBatch", exclude: ["README.md"]),
        .executableTarget(
            name: "launch",
            dependencies: [
                "QEMULaunch", "GuestKit", "QMP", "LaunchSupport", "LaunchBatch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmarks of the QMP client, of supervising many QEMUs and of guest
        // sessions (see Benchmarks/).
        .executableTarget(
            name: "launch-bench",
            dependencies: ["QMP", "QEMULaunch", "GuestKit"],
            path: "Benchmarks/Sources/launch-bench"
        ),
        // What every test target shares: one seeded generator, one way to run a helper program.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "QMPTests",
            dependencies: [
                "QMP", "LaunchSupport", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "QEMULaunchTests",
            dependencies: [
                "QEMULaunch", "QMP", "LaunchSupport", "CLaunchShim", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            // Recorded `help` outputs of QEMU 7.2 and 10.0, read by path (#filePath).
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "LaunchBatchTests",
            dependencies: ["LaunchBatch", "TestSupport"]
        ),
        .testTarget(
            name: "GuestKitTests",
            dependencies: ["GuestKit", "QEMULaunch", "TestSupport"]
        ),
        // Slow: these boot real guests under QEMU (TCG) with the host's kernel.
        .testTarget(
            name: "MachineTests",
            dependencies: ["QEMULaunch", "GuestKit", "QMP", "LaunchSupport", "CLaunchShim", "TestSupport"]
        ),
        // The example a test runner would copy: a Swift Testing suite that runs
        // commands in a guest. It lives in Examples/ and runs with `swift test`.
        .testTarget(
            name: "ExampleGuestTests",
            dependencies: ["GuestKit", "QEMULaunch"],
            path: "Examples/GuestTests"
        ),
    ]
)
