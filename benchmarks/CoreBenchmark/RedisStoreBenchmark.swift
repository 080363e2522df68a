import Foundation
import Logging
import ToolgateCore
import ToolgateRedis

/// Decisions per second through the Redis store, in process (no HTTP): 1,000 subjects, every call allowed,
/// a token bucket per subject. `benchmarks/redis.sh` runs `redis-benchmark` with EVALSHA of the same script
/// at the same concurrency beside it.
enum RedisStoreBenchmark {
    static func run(port: Int, seconds: Double, concurrencies: [Int]) async throws {
        var configuration = RedisClient.Configuration(url: try RedisURL(parsing: "redis://127.0.0.1:\(port)"))
        configuration.operationTimeout = .seconds(2)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = RedisClient(configuration: configuration, logger: logger)
        defer { client.shutdown() }
        let store = RedisLimitStore(client: client, keyPrefix: "bench", logger: logger)
        let charges = (0..<1_000).map { subject in
            [LimitCharge(
                key: "bench:{grant:\(subject)}:calls", counter: "calls", rule: "t", scope: .grant,
                window: Window(seconds: 60, text: "minute"), max: 1_000_000_000, algorithm: .tokenBucket, cost: 1)]
        }
        _ = try await store.acquire(LimitRequest(callID: "warm", charges: charges[0]))
        print("| client | concurrency | decisions/s |")
        print("|---|---:|---:|")
        for concurrency in concurrencies {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            let started = ContinuousClock.now
            let done = try await withThrowingTaskGroup(of: Int.self) { group in
                for task in 0..<concurrency {
                    group.addTask {
                        var n = 0
                        while ContinuousClock.now < deadline {
                            let outcome = try await store.acquire(
                                LimitRequest(callID: "t\(task)-\(n)", charges: charges[(task * 7919 + n) % 1_000]))
                            precondition(outcome.admitted, "benchmark limits must admit every call")
                            n += 1
                        }
                        return n
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - started
            let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("| toolgate RedisLimitStore | \(concurrency) | \(Int(Double(done) / s)) |")
        }
    }
}
