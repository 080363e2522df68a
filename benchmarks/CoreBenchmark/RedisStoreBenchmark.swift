import Foundation
import Logging
import ToolgateCore
import ToolgateRedis

/// Decisions per second through the Redis store, in process (no HTTP): 1,000 subjects, every call allowed,
/// a token bucket per subject. `benchmarks/redis.sh` runs `redis-benchmark` with EVALSHA of the same script
/// at the same concurrency beside it; `benchmarks/redis-cluster.sh` runs it on a cluster and on one Redis.
/// With `limitsPerCall` 2, each call also charges a global counter, which on a cluster sits in another slot.
enum RedisStoreBenchmark {
    static func run(
        ports: [Int], seconds: Double, concurrencies: [Int], limitsPerCall: Int = 1,
        single: (key: String, algorithm: LimitAlgorithm, max: Int)? = nil, waitReplicas: Int = 0,
        tlsCAFile: String? = nil
    ) async throws {
        let seeds = ports.map { RedisURL(host: "127.0.0.1", port: $0, usesTLS: tlsCAFile != nil) }
        var configuration = RedisClient.Configuration(url: seeds[0])
        configuration.operationTimeout = .seconds(2)
        if let tlsCAFile { configuration.tls = try RedisTLSContext(options: RedisTLSOptions(caFile: tlsCAFile)) }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        // The same WAIT timeout toolgate would use with --redis-timeout 100 (the default).
        let deployment = RedisDeployment(
            seeds: seeds, configuration: configuration, logger: logger,
            replicaWait: waitReplicas > 0
                ? .init(
                    replicas: waitReplicas, timeout: .milliseconds(100),
                    connections: Int(ProcessInfo.processInfo.environment["TOOLGATE_BENCH_WAIT_CONNECTIONS"] ?? "") ?? 4)
                : nil)
        defer { deployment.shutdown() }
        if seeds.count == 1 { _ = await deployment.detectCluster() }
        let store = RedisLimitStore(deployment: deployment, keyPrefix: "bench", logger: logger)
        let minute = Window(seconds: 60, text: "minute")
        let global = LimitCharge(
            key: "bench:{global:_}:all", counter: "all", rule: "t", scope: .global, window: minute, max: 1_000_000_000,
            algorithm: .tokenBucket, cost: 1)
        var charges = (0..<1_000).map { subject in
            [LimitCharge(
                key: "bench:{grant:\(subject)}:calls", counter: "calls", rule: "t", scope: .grant,
                window: minute, max: 1_000_000_000, algorithm: .tokenBucket, cost: 1)] + (limitsPerCall > 1 ? [global] : [])
        }
        if let single {
            let charge = LimitCharge(
                key: single.key, counter: "c", rule: "t", scope: .global, window: Window(seconds: 3_600, text: "hour"),
                max: single.max, algorithm: single.algorithm, cost: 1)
            charges = Array(repeating: [charge], count: 1_000)
        } else {
            _ = try await store.acquire(LimitRequest(callID: "warm", charges: charges[0]))
        }
        let label = (deployment.isCluster ? "cluster (\(ports.count) seeds)" : "standalone")
            + (tlsCAFile != nil ? " over TLS" : "")
            + (single.map { ", one \($0.algorithm.rawValue) counter" } ?? ", \(limitsPerCall) limit(s) per call")
            + (waitReplicas > 0 ? ", WAIT \(waitReplicas) (\(deployment.replicaWait!.connections) connections)" : "")
        print("| store | concurrency | decisions/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        let everyCall = charges
        let mustAdmit = single == nil
        for concurrency in concurrencies {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            let started = ContinuousClock.now
            // Each decision's own duration, for the added latency beside the throughput.
            let durations = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for task in 0..<concurrency {
                    group.addTask {
                        var taken: [Duration] = []
                        var now = ContinuousClock.now
                        while now < deadline {
                            let outcome = try await store.acquire(
                                LimitRequest(callID: "t\(task)-\(taken.count)",
                                             charges: everyCall[(task * 7919 + taken.count) % 1_000]))
                            precondition(!mustAdmit || outcome.admitted, "benchmark limits must admit every call")
                            let finished = ContinuousClock.now
                            taken.append(finished - now)
                            now = finished
                        }
                        return taken
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }.sorted()
            let elapsed = ContinuousClock.now - started
            let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            func milliseconds(_ quantile: Double) -> String {
                guard !durations.isEmpty else { return "-" }
                let d = durations[min(durations.count - 1, Int(Double(durations.count) * quantile))].components
                return String(format: "%.2f", Double(d.seconds) * 1e3 + Double(d.attoseconds) / 1e15)
            }
            print("| toolgate RedisLimitStore, \(label) | \(concurrency) | \(Int(Double(durations.count) / s)) "
                + "| \(milliseconds(0.5)) | \(milliseconds(0.99)) |")
        }
    }
}
