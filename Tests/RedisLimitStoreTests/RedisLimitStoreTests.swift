import Logging
import RedisScripts
import Testing
import ToolgateCore
@testable import ToolgateRedis

extension SharedRedisTests {
    @Suite struct RedisLimitStoreTests {
        static func charge(_ key: String, _ algorithm: LimitAlgorithm, window: Int = 1, max: Int = 3) -> LimitCharge {
            LimitCharge(key: key, counter: "c", rule: "t", scope: .global, window: Window(seconds: window, text: "\(window)s"),
                        max: max, algorithm: algorithm, cost: 1)
        }

        @Test func recoversFromAFlushedScriptCache() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("noscript")
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            let charge = Self.charge(prefix + ":{global:_}:c", .sliding, window: 10)
            #expect(try await store.acquire(LimitRequest(callID: "1", charges: [charge])).admitted)
            #expect(try await client.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            #expect(try await client.send(["SCRIPT", "EXISTS", RedisScript.acquire.sha1]) == .array([.integer(0)]))
            let second = try await store.acquire(LimitRequest(callID: "2", charges: [charge]))
            let receipt = try #require(second.receipt)
            #expect(second.admitted)
            #expect(second.results[0].remaining == 1)
            // EVAL loaded it again, under the SHA the binary computes.
            #expect(try await client.send(["SCRIPT", "EXISTS", RedisScript.acquire.sha1]) == .array([.integer(1)]))
            #expect(try await client.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            #expect(try await store.refund(receipt))
            #expect(try await !store.refund(receipt))
        }

        @Test(arguments: LimitAlgorithm.allCases)
        func everyKeyWrittenHasATTLAndTheDatabaseEmptiesAfterTheWindows(algorithm: LimitAlgorithm) async throws {
            let database = 3 + LimitAlgorithm.allCases.firstIndex(of: algorithm)!
            let client = try TestRedis.client(database: database)
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("ttl")
            _ = try await client.send(["FLUSHDB"])
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            for subject in 0..<20 {
                let charge = Self.charge("\(prefix):{grant:\(subject)}:c", algorithm)
                #expect(try await store.acquire(LimitRequest(callID: "call-\(subject)", charges: [charge])).admitted)
            }
            guard case .array(let keys?) = try await client.send(["KEYS", prefix + ":*"]) else {
                Issue.record("KEYS failed")
                return
            }
            #expect(keys.count == 20)  // the counters only: no per-call key
            for key in keys {
                guard case .bulkString(let name?) = key else { continue }
                let pttl = try await client.send(["PTTL", String(decoding: name, as: UTF8.self)])
                guard case .integer(let ms) = pttl else { Issue.record("PTTL: \(pttl)"); continue }
                #expect(ms > 0, "\(String(decoding: name, as: UTF8.self)) has no TTL")
                #expect(ms <= 2_000)
            }
            // Windows of 1 s: within about two windows every key is gone.
            try await Task.sleep(for: .milliseconds(2_100))
            #expect(try await client.send(["DBSIZE"]) == .integer(0))
        }

        @Test func aReplyThatIsNotTheScriptsShapeIsAProtocolError() {
            let one = LimitRequest(callID: "1", charges: [Self.charge("x:{global:_}:c", .sliding)])
            let none = LimitRequest(callID: "1", charges: [])
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .integer(1), request: one) }
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .array([.integer(1)]), request: one) }
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .error("ERR boom"), request: none) }
        }

        /// A reload that changes a counter's algorithm or window starts it fresh: never WRONGTYPE (which would
        /// deny every call as store_unavailable, or under fail-open silently drop the limit), never old state read
        /// with new meaning. Keys left by the previous script version (no tag) start fresh too.
        @Test func aCounterWhoseAlgorithmOrWindowChangesStartsFresh() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("retag")
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            let key = prefix + ":{global:_}:c"
            let variants: [(LimitAlgorithm, Int)] = [(.sliding, 60), (.fixed, 60), (.tokenBucket, 60), (.sliding, 60), (.sliding, 120),
                                                     (.tokenBucket, 60), (.tokenBucket, 30), (.fixed, 60), (.fixed, 120), (.sliding, 60)]
            for (n, (algorithm, window)) in variants.enumerated() {
                let charge = Self.charge(key, algorithm, window: window, max: 1)
                let first = try await store.acquire(LimitRequest(callID: "a\(n)", charges: [charge]))
                #expect(first.admitted, "\(algorithm) \(window)s after the previous variant")
                #expect(!(try await store.acquire(LimitRequest(callID: "b\(n)", charges: [charge])).admitted))
            }
            // A key in the old layout (a log without the running total) is an old counter, not an error.
            _ = try await client.send(["DEL", key])
            _ = try await client.send(["ZADD", key, "1", "old-call:1"])
            #expect(try await store.acquire(LimitRequest(callID: "c", charges: [Self.charge(key, .sliding, window: 60, max: 1)])).admitted)
            _ = try await client.send(["DEL", key])
            _ = try await client.send(["SET", key, "junk"])
            #expect(try await store.acquire(LimitRequest(callID: "d", charges: [Self.charge(key, .fixed, window: 60, max: 1)])).admitted)
        }

        /// A refund of a call made under the old algorithm leaves the new counter alone.
        @Test func aRefundFromBeforeTheChangeTouchesNothing() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("retag-refund")
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            let key = prefix + ":{global:_}:c"
            let old = try #require(try await store.acquire(LimitRequest(callID: "old", charges: [Self.charge(key, .fixed, window: 60, max: 1)])).receipt)
            let bucket = Self.charge(key, .tokenBucket, window: 60, max: 1)
            #expect(try await store.acquire(LimitRequest(callID: "new", charges: [bucket])).admitted)
            #expect(try await store.refund(old))
            #expect(!(try await store.acquire(LimitRequest(callID: "next", charges: [bucket])).admitted))
            // And back to the first algorithm within the same window: a new life of the counter, which a refund
            // from the first life must not reach.
            let fixed = Self.charge(key, .fixed, window: 60, max: 1)
            let x = try #require(try await store.acquire(LimitRequest(callID: "x", charges: [fixed])).receipt)
            #expect(try await store.acquire(LimitRequest(callID: "between", charges: [bucket])).admitted)
            #expect(try await store.acquire(LimitRequest(callID: "y", charges: [fixed])).admitted)
            #expect(try await store.refund(x))
            #expect(!(try await store.acquire(LimitRequest(callID: "z", charges: [fixed])).admitted))
        }

        /// State stays small (DESIGN.md section 7): 50,000 admitted calls in a day-long window leave one key, the
        /// counter itself, whose log holds one member per call plus its running total; no per-call key.
        @Test func aDayLongWindowAfterFiftyThousandCallsHoldsNoPerCallKeys() async throws {
            let database = 7
            let client = try TestRedis.client(database: database)
            defer { client.shutdown() }
            _ = try await client.send(["FLUSHDB"])
            let prefix = TestRedis.uniquePrefix("day")
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            let key = prefix + ":{global:_}:calls"
            let charge = Self.charge(key, .sliding, window: 86_400, max: 1_000_000)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<64 {
                    group.addTask {
                        for i in stride(from: lane, to: 50_000, by: 64) {
                            let outcome = try await store.acquire(LimitRequest(callID: "c\(i)", charges: [charge]))
                            precondition(outcome.admitted)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.send(["DBSIZE"]) == .integer(1))
            #expect(try await client.send(["ZCARD", key]) == .integer(50_001))
            let last = try await store.acquire(LimitRequest(callID: "last", charges: [charge]))
            #expect(last.results[0].remaining == 1_000_000 - 50_001)
            _ = try await client.send(["FLUSHDB"])
        }

        @Test func anUnreachableRedisIsUnavailableNotAHang() async throws {
            var configuration = RedisClient.Configuration(url: try RedisURL(parsing: "redis://127.0.0.1:1"))
            configuration.operationTimeout = .milliseconds(100)
            let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
            defer { client.shutdown() }
            let store = RedisLimitStore(client: client, keyPrefix: "x", logger: Logger(label: "test"))
            do {
                _ = try await store.acquire(LimitRequest(callID: "1", charges: [Self.charge("x:{global:_}:c", .sliding)]))
                Issue.record("acquire succeeded against a closed port")
            } catch {
                #expect(error.code == .unavailable || error.code == .timeout)
            }
        }
    }
}
