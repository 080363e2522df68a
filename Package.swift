// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "toolgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "toolgate", targets: ["toolgate"]),
        .library(name: "ToolgateCore", targets: ["ToolgateCore"]),
        .library(name: "ToolgateUpstream", targets: ["ToolgateUpstream"]),
        .library(name: "ToolgateRedis", targets: ["ToolgateRedis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Already in the graph through Hummingbird; named so the server can inspect raw HTTP/1 request heads.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    ],
    targets: [
        // Pure core: policy, evaluation, limit algorithms, JSON. No I/O.
        .target(
            name: "ToolgateCore",
            dependencies: [
                "CPCRE2",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The Redis scripts of lua/, embedded in the binary; lua/ holds the only copy.
        .target(
            name: "RedisScripts",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "lua",
            exclude: ["README.md"],
            sources: ["RedisScript.swift"],
            resources: [
                .embedInCode("acquire.lua"), .embedInCode("refund.lua"), .embedInCode("approval_start.lua"),
                .embedInCode("approval_decide.lua"), .embedInCode("approval_consume.lua"),
            ]
        ),
        // Policy `regex` rules: PCRE2 on Unicode scalars, with match, depth and heap limits (CompiledRegex).
        .systemLibrary(
            name: "CPCRE2",
            pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]
        ),
        // System libraries for the adapters: Redis through hiredis, upstream HTTP through libcurl.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // TLS to Redis: OpenSSL on the socket hiredis opened (hiredis 0.14 has no TLS of its own).
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // The HTTP server: Hummingbird routes, the proxy pipeline, metrics.
        .target(
            name: "ToolgateServer",
            dependencies: [
                "ToolgateCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                // AsyncChannel: the merged endpoint fans several servers' streams into one, with back-pressure.
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ]
        ),
        // Upstream HTTP client: one libcurl multi handle on its own thread, bridged to async/await.
        .target(
            name: "ToolgateUpstream",
            dependencies: ["ToolgateCore", "CCurl", "CChildProcess"]
        ),
        // Starting a stdio upstream: fork and exec with only async-signal-safe calls between, a process group, and a
        // guardian process that ends the group when toolgate dies.
        .target(name: "CChildProcess"),
        // Redis: the hiredis client (pipelined connections, each on its own thread) and the fleet-wide limit store.
        .target(
            name: "ToolgateRedis",
            dependencies: [
                "ToolgateCore",
                "CHiredis",
                "COpenSSL",
                "RedisScripts",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The example upstream MCP server that `toolgate demo` runs.
        .target(
            name: "ExampleUpstream",
            dependencies: [
                "ToolgateCore",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        // The demo's policy, examples/policy.json, embedded so `toolgate demo` runs from any directory.
        .target(
            name: "DemoPolicy",
            path: "examples",
            exclude: ["seed-policy.json"],
            sources: ["DemoPolicy.swift"],
            resources: [.embedInCode("policy.json")]
        ),
        .executableTarget(
            name: "toolgate",
            dependencies: [
                "ToolgateCore",
                "DemoPolicy",
                "ToolgateServer",
                "ToolgateUpstream",
                "ToolgateRedis",
                "ExampleUpstream",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "example-upstream",
            dependencies: [
                "ExampleUpstream",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "toolgate-bench",
            dependencies: ["ToolgateCore", "ToolgateRedis", .product(name: "Logging", package: "swift-log")],
            path: "benchmarks/CoreBenchmark"
        ),
        .executableTarget(
            name: "toolgate-redis-bench",
            dependencies: ["ToolgateRedis", .product(name: "Logging", package: "swift-log")],
            path: "benchmarks/RedisClientBenchmark"
        ),
        // Shared by the test targets and the fuzzer: reproducible randomness, and the argument-rule reference
        // evaluator with its generator.
        .target(
            name: "ToolgateTestSupport",
            dependencies: ["ToolgateCore"],
            path: "Sources/ToolgateTestSupport"
        ),
        // libFuzzer targets for every parser of outside input (scripts/fuzz.sh builds them with -sanitize=fuzzer
        // into .build-fuzz); a plain build replays saved inputs through them.
        .executableTarget(
            name: "toolgate-fuzz",
            dependencies: ["ToolgateCore", "ToolgateRedis", "ToolgateTestSupport", "CLibFuzzer"],
            path: "Tests/Fuzz/Targets"
        ),
        .target(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .testTarget(
            name: "ToolgateCoreTests",
            dependencies: ["ToolgateCore", "ToolgateTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ToolgateServerTests",
            dependencies: [
                "ToolgateServer",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "ToolgateCLITests",
            dependencies: ["toolgate"]
        ),
        .testTarget(
            name: "ToolgateUpstreamTests",
            dependencies: ["ToolgateUpstream"],
            exclude: ["Support"]
        ),
        // Integration tests: each starts its own redis-server on a free loopback port.
        .testTarget(
            name: "ToolgateRedisTests",
            dependencies: ["ToolgateRedis", "ToolgateCore", "RedisScripts", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "RedisLimitStoreTests",
            dependencies: ["ToolgateRedis", "RedisScripts", "ToolgateTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "RedisScriptsTests",
            dependencies: ["RedisScripts"]
        ),
        .testTarget(
            name: "SystemLibraryTests",
            dependencies: ["CHiredis", "CCurl", "COpenSSL"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
