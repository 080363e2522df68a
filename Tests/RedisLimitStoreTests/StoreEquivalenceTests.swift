import Logging
import Testing
import ToolgateCore
import ToolgateTestSupport
@testable import ToolgateRedis

/// The same decisions from both stores. The Redis store runs first, in real time; the in-memory store then
/// replays the same calls with its injected clock set to each decision's Redis time, and must answer alike.
extension SharedRedisTests {
    @Suite struct StoreEquivalenceTests {
        enum Step {
            case acquire(String, [LimitCharge])
            case refund(String)
            case sleep(milliseconds: Int)
        }

        static func charge(
            _ key: String, _ algorithm: LimitAlgorithm, window: Int = 1, max: Int, cost: Int = 1, shadow: Bool = false
        ) -> LimitCharge {
            LimitCharge(
                key: key, counter: key, rule: "t", scope: .global, window: Window(seconds: window, text: "\(window)s"), max: max,
                algorithm: algorithm, cost: cost, shadow: shadow)
        }

        /// Runs `steps` on Redis, then replays them on memory; returns how many decisions were compared.
        @discardableResult
        static func compare(_ name: String, _ build: (String) -> [Step]) async throws -> Int {
            let prefix = TestRedis.uniquePrefix(name)
            let steps = build(prefix)
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let redis = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            var recorded: [(outcome: LimitOutcome?, refunded: Bool?)] = []
            var redisReceipts: [String: LimitReceipt] = [:]
            for step in steps {
                switch step {
                case .acquire(let id, let charges):
                    let outcome = try await redis.acquire(LimitRequest(callID: id, charges: charges))
                    redisReceipts[id] = outcome.receipt
                    recorded.append((outcome, nil))
                case .refund(let id):
                    // Refunds come late here (other calls and sleeps in between): both stores must bound them alike.
                    var refunded = false
                    if let receipt = redisReceipts[id] { refunded = try await redis.refund(receipt) }
                    recorded.append((nil, refunded))
                case .sleep(let ms):
                    try await Task.sleep(for: .milliseconds(ms))
                    recorded.append((nil, nil))
                }
            }
            let clock = ManualWallClock(micros: 0)
            let memory = InMemoryLimitStore(clock: clock)
            var compared = 0
            var memoryReceipts: [String: LimitReceipt] = [:]
            for (step, record) in zip(steps, recorded) {
                switch step {
                case .acquire(let id, let charges):
                    let expected = record.outcome!
                    clock.set(micros: expected.decidedAtMicros)
                    let actual = memory.acquireNow(LimitRequest(callID: id, charges: charges))
                    // Receipts included: both stores hand the sidecar the same refund information.
                    #expect(actual == expected, "\(name): call \(id) at \(expected.decidedAtMicros)")
                    memoryReceipts[id] = actual.receipt
                    compared += 1
                case .refund(let id):
                    #expect((memoryReceipts[id].map { memory.refundNow($0) } ?? false) == record.refunded!, "\(name): refund \(id)")
                case .sleep:
                    break
                }
            }
            return compared
        }

        @Test(arguments: LimitAlgorithm.allCases)
        func burstThenRecovery(algorithm: LimitAlgorithm) async throws {
            try await Self.compare("burst-\(algorithm.rawValue)") { p in
                let c = Self.charge(p + ":{global:_}:c", algorithm, max: 3)
                return (0..<5).map { .acquire("a\($0)", [c]) } + [.sleep(milliseconds: 400)]
                    + (0..<3).map { .acquire("b\($0)", [c]) } + [.sleep(milliseconds: 700)] + (0..<4).map { .acquire("c\($0)", [c]) }
            }
        }

        @Test func multipleLimitsAreAllOrNothing() async throws {
            try await Self.compare("multi") { p in
                let wide = Self.charge(p + ":{global:_}:wide", .sliding, window: 2, max: 5)
                let narrow = Self.charge(p + ":{grant:x}:narrow", .fixed, window: 2, max: 2)
                let bucket = Self.charge(p + ":{agent:y}:bucket", .tokenBucket, window: 2, max: 4)
                return (0..<6).map { .acquire("m\($0)", [wide, narrow, bucket]) } + (0..<4).map { .acquire("w\($0)", [wide, bucket]) }
            }
        }

        @Test func costsShadowsAndRefunds() async throws {
            try await Self.compare("costs") { p in
                let spend = Self.charge(p + ":{grant:x}:spend", .sliding, window: 2, max: 10, cost: 4)
                let zero = Self.charge(p + ":{grant:x}:spend", .sliding, window: 2, max: 10, cost: 0)
                let shadow = Self.charge(p + ":{grant:x}:shadow", .fixed, window: 2, max: 1, shadow: true)
                let bucket = Self.charge(p + ":{grant:x}:bucket", .tokenBucket, window: 2, max: 7, cost: 3)
                return [
                    .acquire("1", [spend, shadow, bucket]), .acquire("2", [spend, shadow, bucket]), .acquire("3", [spend, shadow, bucket]),
                    .acquire("z", [zero]), .refund("2"), .refund("2"), .refund("never"), .refund("z"), .acquire("4", [spend, shadow, bucket]),
                    .acquire("5", [spend, shadow, bucket]),
                ]
            }
        }

        /// Token-bucket refunds that arrive after the bucket ran empty, or after later calls: the two stores bound
        /// them the same way, and the case admits no third call.
        @Test func lateBucketRefunds() async throws {
            try await Self.compare("late-bucket") { p in
                let bucket = Self.charge(p + ":{grant:x}:bucket", .tokenBucket, window: 1, max: 2)
                return [
                    .acquire("a", [bucket]), .sleep(milliseconds: 600), .acquire("b", [bucket]), .acquire("c", [bucket]),
                    .refund("a"), .acquire("d", [bucket]), .sleep(milliseconds: 100), .acquire("e", [bucket]), .refund("c"),
                    .acquire("f", [bucket]), .refund("f"), .acquire("g", [bucket]),
                ]
            }
        }

        @Test(arguments: [1, 2, 3] as [UInt64])
        func randomTraffic(seed: UInt64) async throws {
            var rng = SeededGenerator(seed: seed)
            let compared = try await Self.compare("random-\(seed)") { p in
                let limits = LimitAlgorithm.allCases.flatMap { algorithm in
                    [Self.charge(p + ":{global:_}:\(algorithm.rawValue)", algorithm, max: 5),
                     Self.charge(p + ":{grant:g}:\(algorithm.rawValue)-cost", algorithm, window: 2, max: 6, cost: 2)]
                }
                var steps: [Step] = []
                for i in 0..<80 {
                    switch rng.next() % 10 {
                    case 0: steps.append(.sleep(milliseconds: Int(rng.next() % 120)))
                    case 1: steps.append(.refund("r\(rng.next() % UInt64(max(i, 1)))"))
                    default:
                        let chosen = limits.filter { _ in rng.next() % 3 == 0 }
                        steps.append(.acquire("r\(i)", chosen.isEmpty ? [limits[Int(rng.next() % UInt64(limits.count))]] : chosen))
                    }
                }
                return steps
            }
            #expect(compared > 50)
        }
    }
}
