import Logging
import ToolgateRedis

/// Drives `RedisClient` with N concurrent tasks, each sending `INCR` on one of 1,000 keys in a loop, and prints
/// a Markdown table: throughput, latency, and how many commands went out per `write()` (the pipelining).
///
/// Usage: toolgate-redis-bench redis://127.0.0.1:PORT [seconds per row] [concurrency...]
@main
struct RedisClientBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let text = arguments.first else {
            print("usage: toolgate-redis-bench redis://HOST:PORT [seconds] [concurrency...]")
            return
        }
        let url = try RedisURL(parsing: text)
        let seconds = arguments.dropFirst().first.flatMap(Int.init) ?? 5
        let levels = arguments.dropFirst(2).compactMap(Int.init)
        var logger = Logger(label: "toolgate.redis.bench")
        logger.logLevel = .warning

        print("| concurrency | connections | commands/s | p50 µs | p99 µs | commands per write | timeouts | errors |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for concurrency in levels.isEmpty ? [1, 16, 64, 256, 1024] : levels {
            let client = RedisClient(configuration: .init(url: url), logger: logger)
            defer { client.shutdown() }
            for _ in 0..<100 { _ = try? await client.send(["PING"]) }  // warm-up, and both connections up
            let before = client.statistics
            let start = ContinuousClock.now
            let end = start + .seconds(seconds)
            let results = await withTaskGroup(of: Run.self) { group in
                for task in 0..<concurrency {
                    group.addTask { await Run.loop(client: client, task: task, until: end) }
                }
                var runs: [Run] = []
                for await run in group { runs.append(run) }
                return runs
            }
            let elapsed = ContinuousClock.now - start
            let after = client.statistics
            let latencies = results.flatMap(\.microseconds).sorted()
            let commands = after.commands - before.commands
            let writes = max(after.writes - before.writes, 1)
            let perSecond = Double(latencies.count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            print(
                "| \(concurrency) | \(client.configuration.connections) | \(Int(perSecond)) | \(percentile(latencies, 0.5)) "
                    + "| \(percentile(latencies, 0.99)) | \(ratio(commands, writes)) "
                    + "| \(after.timeouts - before.timeouts) | \(results.reduce(0) { $0 + $1.errors }) |")
        }
    }

    static func percentile(_ sorted: [Int], _ fraction: Double) -> Int {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }

    /// One decimal, without Foundation's `String(format:)`.
    static func ratio(_ commands: Int, _ writes: Int) -> String {
        let tenths = commands * 10 / writes
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// One task's calls: each latency in microseconds, and the calls that failed.
struct Run: Sendable {
    var microseconds: [Int] = []
    var errors = 0

    static func loop(client: RedisClient, task: Int, until end: ContinuousClock.Instant) async -> Run {
        var run = Run()
        var key = task
        while ContinuousClock.now < end {
            key = (key &* 1_103_515_245 &+ 12345) & 0x7fff_ffff
            let started = ContinuousClock.now
            do {
                _ = try await client.send(["INCR", "bench:\(key % 1000)"])
                let took = ContinuousClock.now - started
                run.microseconds.append(Int(took.components.seconds) * 1_000_000 + Int(took.components.attoseconds / 1_000_000_000_000))
            } catch {
                run.errors += 1
            }
        }
        return run
    }
}
