// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-qemu-launch",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QMP", targets: ["QMP"]),
        .library(name: "QEMULaunch", targets: ["QEMULaunch"]),
        .library(name: "GuestKit", targets: ["GuestKit"]),
        .executable(name: "launch", targets: ["launch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // Spawning children with a parent-death signal, an exact fd map and a new
        // session: the one thing Foundation's Process and swift-subprocess can't do.
        .target(name: "CLaunchShim"),
        .target(
            name: "QMP",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            exclude: ["README.md"]
        ),
        .target(
            name: "QEMULaunch",
            dependencies: [
                "QMP", "CLaunchShim",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        .target(
            name: "GuestKit",
            dependencies: [
                "QEMULaunch", "QMP",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "launch",
            dependencies: [
                "QEMULaunch", "GuestKit", "QMP",
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
        .testTarget(
            name: "QMPTests",
            dependencies: [
                "QMP",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "QEMULaunchTests",
            dependencies: [
                "QEMULaunch", "QMP",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "GuestKitTests",
            dependencies: ["GuestKit", "QEMULaunch"]
        ),
        // Slow: these boot real guests under QEMU (TCG) with the host's kernel.
        .testTarget(
            name: "MachineTests",
            dependencies: ["QEMULaunch", "GuestKit", "QMP"]
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
