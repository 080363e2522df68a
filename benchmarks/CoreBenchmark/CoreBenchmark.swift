import Foundation
import ToolgateCore

/// Measures the per-call decision path that runs inside toolgate for every `tools/call`:
/// policy evaluation and the embedded store's check-and-consume. Prints a Markdown table.
@main
struct CoreBenchmark {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "redis" {
            // toolgate-bench redis PORT[,PORT...] [SECONDS] [CONCURRENCY...]: several ports are cluster seeds.
            // TOOLGATE_BENCH_LIMITS=2 gives each call a second limit in another slot (a cross-slot call on a cluster).
            let ports = arguments.count >= 2 ? arguments[1].split(separator: ",").compactMap { Int($0) } : []
            guard !ports.isEmpty else {
                print("usage: toolgate-bench redis PORT[,PORT...] [SECONDS] [CONCURRENCY...]")
                return
            }
            let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 10 : 10
            let levels = arguments.count > 3 ? arguments[3...].compactMap { Int($0) } : [1, 16, 64]
            // TOOLGATE_BENCH_KEY (with _ALGORITHM and _MAX): every call charges that one counter (window one hour),
            // admitted or not: what benchmarks/redis-state.sh measures on a counter it filled.
            let environment = ProcessInfo.processInfo.environment
            let limits = Int(environment["TOOLGATE_BENCH_LIMITS"] ?? "1") ?? 1
            let single = environment["TOOLGATE_BENCH_KEY"].map { key in
                (key, LimitAlgorithm(rawValue: environment["TOOLGATE_BENCH_ALGORITHM"] ?? "sliding") ?? .sliding,
                 Int(environment["TOOLGATE_BENCH_MAX"] ?? "") ?? 1_000)
            }
            // TOOLGATE_BENCH_WAIT_REPLICAS=N: every decision waits for N replicas (--redis-wait-replicas N).
            let waitReplicas = Int(environment["TOOLGATE_BENCH_WAIT_REPLICAS"] ?? "0") ?? 0
            // TOOLGATE_BENCH_TLS_CA=FILE: the ports are TLS ports (rediss://), verified against that CA.
            try await RedisStoreBenchmark.run(
                ports: ports, seconds: seconds, concurrencies: levels, limitsPerCall: limits, single: single,
                waitReplicas: waitReplicas, tlsCAFile: environment["TOOLGATE_BENCH_TLS_CA"])
            return
        }
        if arguments.first == "adversarial" {
            // toolgate-bench adversarial: what one hostile request costs (issue 8).
            try AdversarialBenchmark.run()
            return
        }
        let seedPolicy = try Policy.parse(
            #"{"version":"1","default":"deny","tools":{"imageBackgroundRemoval":{"limits":[{"counter":"imagebackgroundremoval_rate","window":"minute","max":10,"scope":"grant"}]}}}"#,
            file: "seed.json")
        let examplePath = arguments.first ?? "examples/policy.json"
        let exampleBytes = Array(try Data(contentsOf: URL(fileURLWithPath: examplePath)))
        let example = try Policy.parse(exampleBytes, file: examplePath)
        let identity = Identity(grant: "ci-bot", session: "session-1", agent: "host-a")

        var rows: [(String, Double, String)] = []
        /// `BENCH_SCALE=N` divides every iteration count by N (benchmarks/run.sh --quick: the figures then mean nothing).
        let scale = max(1, ProcessInfo.processInfo.environment["BENCH_SCALE"].flatMap { Int($0) } ?? 1)
        /// Median of five rounds: the machine is shared and noisy.
        func record(_ name: String, iterations: Int, unit: String = "ns/op", _ body: () -> Void) {
            let iterations = max(1, iterations / scale)
            for _ in 0..<max(1, iterations / 10) { body() }  // warm-up
            var rounds: [Double] = []
            for _ in 0..<5 {
                let start = ContinuousClock.now
                for _ in 0..<iterations { body() }
                let elapsed = ContinuousClock.now - start
                let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
                rounds.append(ns / Double(iterations))
            }
            rows.append((name, rounds.sorted()[2], unit))
        }

        record("parse examples/policy.json", iterations: 2_000) {
            _ = try! Policy.parse(exampleBytes, file: examplePath)
        }
        let seedEvaluator = Evaluator(policy: seedPolicy)
        let exampleEvaluator = Evaluator(policy: example)
        let seedCall = ToolCall(name: "imageBackgroundRemoval", arguments: ["image": "https://example.com/cat.png"])
        let exampleCall = ToolCall(name: "imageBackgroundRemoval", arguments: ["width": 1024])
        record("evaluate: seed policy, allowed call (1 limit)", iterations: 200_000) {
            precondition(seedEvaluator.evaluate(seedCall, identity: identity).verdict == .allowed)
        }
        record("evaluate: example policy, args rule + 2 limits", iterations: 200_000) {
            precondition(exampleEvaluator.evaluate(exampleCall, identity: identity).verdict == .allowed)
        }
        record("evaluate: unknown tool", iterations: 200_000) {
            precondition(seedEvaluator.evaluate(ToolCall(name: "rm"), identity: identity).verdict == .unknownTool)
        }
        let clock = ManualWallClock(micros: 1_764_000_000_000_000)
        let charges = (0..<1_000).map { i in
            exampleEvaluator.evaluate(exampleCall, identity: Identity(grant: "grant-\(i)", agent: "host-a")).charges
        }
        let wide = charges.map { list in
            list.map {
                LimitCharge(key: $0.key, counter: $0.counter, rule: $0.rule, scope: $0.scope, window: $0.window,
                            max: 1_000_000, algorithm: $0.algorithm, cost: 1)
            }
        }
        for algorithm in LimitAlgorithm.allCases {
            let store = InMemoryLimitStore(clock: clock)
            var n = 0
            let perSubject = wide.map { list in list.map {
                LimitCharge(key: $0.key + ":" + algorithm.rawValue, counter: $0.counter, rule: $0.rule, scope: $0.scope,
                            window: $0.window, max: $0.max, algorithm: algorithm, cost: 1)
            } }
            record("memory store acquire, \(algorithm.rawValue), 2 limits, 1000 subjects", iterations: 100_000) {
                n += 1
                clock.advance(micros: 1)
                precondition(store.acquireNow(LimitRequest(callID: "c\(n)", charges: perSubject[n % 1_000])).admitted)
            }
        }

        // Throughput with concurrent callers on the shared store (async path, one lock).
        let store = InMemoryLimitStore(clock: SystemWallClock())
        let bucketCharges = wide.map { list in list.map {
            LimitCharge(key: $0.key, counter: $0.counter, rule: $0.rule, scope: $0.scope, window: Window(seconds: 1, text: "second"),
                        max: 1_000_000, algorithm: .tokenBucket, cost: 1)
        } }
        for concurrency in [1, 16, 64] {
            var rounds: [Double] = []
            for _ in 0..<3 {
                let perTask = max(1, 100_000 / scale / concurrency)
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for t in 0..<concurrency {
                        group.addTask {
                            for i in 0..<perTask {
                                _ = try await store.acquire(LimitRequest(callID: "t\(t)-\(i)", charges: bucketCharges[(t * perTask + i) % 1_000]))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                rounds.append(Double(perTask * concurrency) / seconds)
            }
            rows.append(("memory store decisions/s, token_bucket, \(concurrency) concurrent tasks (median of 3)", rounds.sorted()[1], "ops/s"))
        }

        print("| benchmark | result | unit |")
        print("|---|---:|---|")
        for (name, value, unit) in rows {
            print("| \(name) | \(String(format: value >= 100 ? "%.0f" : "%.1f", value)) | \(unit) |")
        }
    }
}
