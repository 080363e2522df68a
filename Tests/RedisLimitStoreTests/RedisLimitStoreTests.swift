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
            #expect(second.admitted)
            #expect(second.results[0].remaining == 1)
            // EVAL loaded it again, under the SHA the binary computes.
            #expect(try await client.send(["SCRIPT", "EXISTS", RedisScript.acquire.sha1]) == .array([.integer(1)]))
            #expect(try await client.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            #expect(try await store.refund(callID: "2"))
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
            #expect(keys.count == 40)  // 20 counters and 20 refund records
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
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .integer(1), count: 1) }
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .array([.integer(1)]), count: 1) }
            #expect(throws: LimitStoreError.self) { try RedisLimitStore.outcome(from: .error("ERR boom"), count: 0) }
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
