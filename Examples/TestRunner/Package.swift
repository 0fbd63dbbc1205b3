// swift-tools-version: 6.1
// A project of its own that tests its code in guests with GuestKit, the way a test
// runner would: it depends on the launcher by path (`launcher` links to the
// repository root) and runs with `swift test` in this folder.
import PackageDescription

let package = Package(
    name: "GuestTestRunner",
    dependencies: [
        .package(path: "launcher"),
    ],
    targets: [
        .testTarget(
            name: "GuestTestRunnerTests",
            dependencies: [
                .product(name: "GuestKit", package: "launcher"),
                .product(name: "QEMULaunch", package: "launcher"),
            ]
        ),
    ]
)
