import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

extension SharedRedisTests {
    /// The Redis round-state store: taken once across sidecars, with Redis keeping the lifetime.
    @Suite struct RedisRoundStateStoreTests {
        @Test func aStateIsTakenOnceAcrossSidecarsAndExpiresInRedis() async throws {
            let clientA = try TestRedis.client()
            let clientB = try TestRedis.client()
            defer {
                clientA.shutdown()
                clientB.shutdown()
            }
            let prefix = TestRedis.uniquePrefix("rounds")
            let a = RedisRoundStateStore(client: clientA, keyPrefix: prefix, logger: Logger(label: "test"))
            let b = RedisRoundStateStore(client: clientB, keyPrefix: prefix, logger: Logger(label: "test"))
            let binding = RoundBinding(grant: "g", tool: "t", arguments: ["x": 1], decidedBy: "p", requestState: "state")
            #expect(try await b.take(binding) == false)
            try await a.remember(binding, ttlSeconds: RoundBinding.lifetimeSeconds)
            let ttl = try await clientA.send(["PTTL", a.key(binding)])
            guard case .integer(let millis) = ttl else { Issue.record("PTTL answered \(ttl)"); return }
            #expect(millis > 590_000 && millis <= 600_000)
            // Two sidecars race for one follow-up: exactly one wins.
            async let first = a.take(binding)
            async let second = b.take(binding)
            let wins = try await [first, second].filter { $0 }.count
            #expect(wins == 1)
            #expect(try await clientA.send(["EXISTS", a.key(binding)]) == .integer(0))
        }

        @Test func anUnreachableRedisIsAStoreError() async throws {
            let client = try TestRedis.client()
            let store = RedisRoundStateStore(client: client, keyPrefix: "x", logger: Logger(label: "test"))
            client.shutdown()
            await #expect(throws: LimitStoreError.self) {
                try await store.take(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "s"))
            }
        }
    }
}
