import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

extension SharedRedisTests {
    /// The Redis approval store gives the in-memory store's answers, step for step, and leaves only keys that expire.
    @Suite struct RedisApprovalStoreTests {
        static func store(_ client: RedisClient, _ prefix: String) -> RedisApprovalStore {
            RedisApprovalStore(
                deployment: RedisDeployment(client: client, logger: Logger(label: "test")), keyPrefix: prefix, logger: Logger(label: "test"))
        }

        static func bindings() -> [ApprovalBinding] {
            [
                ApprovalBinding(grant: "g", tool: "t", arguments: ["a": 1], policySHA256: "p"),
                ApprovalBinding(grant: "g", tool: "t", arguments: ["a": 2], policySHA256: "p"),
                ApprovalBinding(grant: "h\u{212A}", tool: "t\u{301}", arguments: ["s": "x\ny"], policySHA256: "p"),
            ]
        }

        /// One step of a scenario, the same on both stores; outcomes compared with the ids each store reports.
        enum Step { case start(Int), decide(Int, Bool), consume(Int), list }

        @Test func givesTheSameAnswersAsTheMemoryStore() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let redis = Self.store(client, TestRedis.uniquePrefix("approvals"))
            let memory = InMemoryApprovalStore(clock: SystemWallClock())
            let bindings = Self.bindings()
            var generator = SystemRandomNumberGenerator()
            var latest: [Int: String] = [:]  // binding → id of its latest request (same on both stores)
            var counter = 0
            for step in 0..<300 {
                let b = Int.random(in: 0..<bindings.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    counter += 1
                    let id = bindings[b].key + "-" + String(format: "%016x", counter)
                    // A cap of 1 per grant and looks that never create: both stores must refuse and find alike.
                    let creation: ApprovalCreation = Bool.random(using: &generator) ? .lookOnly : .create(maxPendingPerGrant: 1)
                    let r = try await redis.start(bindings[b], newID: id, ttlSeconds: 60, creation: creation)
                    let m = try await memory.start(bindings[b], newID: id, ttlSeconds: 60, creation: creation)
                    switch (r, m) {
                    case (.pending(let x), .pending(let y)):
                        #expect(x.id == y.id && x.state == y.state && x.arguments == y.arguments && x.grant == y.grant, "step \(step)")
                        latest[b] = x.id
                    default:
                        #expect(r == m, "step \(step)")
                    }
                case 1:
                    guard let id = latest[b] else { continue }
                    let approve = Bool.random(using: &generator)
                    let r = try await redis.decide(id: id, approve: approve)
                    let m = try await memory.decide(id: id, approve: approve)
                    switch (r, m) {
                    case (.decided(let x), .decided(let y)), (.alreadyDecided(let x), .alreadyDecided(let y)):
                        #expect(x.id == y.id && x.state == y.state, "step \(step)")
                    default:
                        #expect(r == m, "step \(step)")
                    }
                case 2:
                    guard let id = latest[b] else { continue }
                    #expect(try await redis.consume(id: id) == (try await memory.consume(id: id)), "step \(step)")
                default:
                    let r = try await redis.list().map { "\($0.id) \($0.state)" }.sorted()
                    let m = try await memory.list().map { "\($0.id) \($0.state)" }.sorted()
                    #expect(r == m, "step \(step)")
                    let ids = Array(latest.values)
                    #expect(try await redis.states(ids: ids) == (try await memory.states(ids: ids)), "step \(step)")
                }
            }
        }

        @Test func everyKeyExpiresAndAnUnusedApprovalGoesWithIt() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("approvals-ttl")
            let redis = Self.store(client, prefix)
            let binding = Self.bindings()[0]
            guard case .pending(let approval) = try await redis.start(binding, newID: Approval.newID(for: binding), ttlSeconds: 1, creation: .create(maxPendingPerGrant: 10)) else {
                Issue.record("no request opened")
                return
            }
            guard case .integer(let openTTL) = try await client.send(["PTTL", redis.openKey(grant: binding.grant)]) else {
                throw RedisError.protocolError("PTTL")
            }
            #expect(openTTL > 0 && openTTL <= 1_000, "the grant's open requests have PTTL \(openTTL)")
            _ = try await redis.decide(id: approval.id, approve: true)
            // Decided: no longer open, and its grant's set is gone with it.
            #expect(try await client.send(["EXISTS", redis.openKey(grant: binding.grant)]) == .integer(0))
            for key in [redis.recordKey(binding.key), redis.indexKey] {
                guard case .integer(let ttl) = try await client.send(["PTTL", key]) else { throw RedisError.protocolError("PTTL") }
                #expect(ttl > 0 && ttl <= 1_000, "\(key) has PTTL \(ttl)")
            }
            #expect(try await redis.list().map(\.state) == [.approved])
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await redis.list().isEmpty)
            #expect(
                try await client.send(["EXISTS", redis.recordKey(binding.key), redis.indexKey, redis.openKey(grant: binding.grant)]) == .integer(0))
            if case .pending = try await redis.start(binding, newID: Approval.newID(for: binding), ttlSeconds: 1, creation: .create(maxPendingPerGrant: 10)) {} else {
                Issue.record("an expired approval was used")
            }
        }

        @Test func idsFromOutsideNeverShapeAKey() async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let redis = Self.store(client, TestRedis.uniquePrefix("approvals-ids"))
            for id in ["", "x", "{approvals:_}:index", "../../etc", String(repeating: "a", count: 32) + "-" + String(repeating: "z", count: 16)] {
                #expect(try await redis.decide(id: id, approve: true) == .notFound)
            }
            #expect(try await redis.states(ids: ["nonsense"]).isEmpty)
        }
    }
}
