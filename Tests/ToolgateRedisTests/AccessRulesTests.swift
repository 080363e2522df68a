import Foundation
import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

/// The least-privilege ACL user README documents, on a real redis-server: every store operation works through it
/// (limits of each algorithm, refunds, a script cache flushed behind toolgate's back, approvals, multi-round states,
/// `WAIT`), and a Redis that refuses `CONFIG` is a `/readyz` warning, not a failure.
@Suite struct AccessRulesTests {
    /// Exactly what README's "Redis ACL" section gives, less the optional `+config|get` (a managed service that
    /// refuses CONFIG) and `+info` (cluster detection then relies on `MOVED`).
    static let requiredRules =
        "+ping +client|setname +select +evalsha +eval +wait +time +set +del +hmget +hset +zadd +zrem +zrange +zrangebyscore +zremrangebyscore +zcard +pexpire +pexpireat +pttl +cluster|slots +cluster|nodes +asking"
    static let optionalRules = "+info +config|get"

    static func readme() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    @Test func readmeGivesTheseRules() throws {
        let readme = try Self.readme()
        #expect(readme.contains("ACL SETUSER toolgate on '>PASSWORD' resetkeys '~toolgate:*' resetchannels -@all \(Self.requiredRules) \(Self.optionalRules)"))
    }

    static func withACLUser(_ body: (RedisTestServer, RedisURL) async throws -> Void) async throws {
        try await RedisTestServer.with { server async throws in
            let rules = Self.requiredRules.split(separator: " ").map(String.init)
            let created = try server.cli(
                ["ACL", "SETUSER", "toolgate", "on", ">pass", "resetkeys", "~toolgate:*", "resetchannels", "-@all"] + rules)
            try #require(created == "OK", "ACL SETUSER answered \(created)")
            try await body(server, try server.url("toolgate:pass@"))
        }
    }

    @Test func theDecisionSuiteRunsAsTheLeastPrivilegedUser() async throws {
        try await Self.withACLUser { server, url async throws in
            let client = makeClient(url)
            let deployment = RedisDeployment(client: client, logger: testLogger)
            defer { deployment.shutdown() }
            let store = RedisLimitStore(deployment: deployment, keyPrefix: "toolgate", logger: testLogger)

            // Limits, each algorithm: admitted up to max, then denied; a refund gives one back, once.
            for algorithm in LimitAlgorithm.allCases {
                let charge = LimitCharge(
                    key: "toolgate:{global:_}:\(algorithm.rawValue)", counter: "c", rule: "t", scope: .global,
                    window: Window(seconds: 60, text: "60s"), max: 2, algorithm: algorithm, cost: 1)
                let first = try await store.acquire(LimitRequest(callID: "\(algorithm)-1", charges: [charge]))
                #expect(first.admitted)
                #expect(try await store.acquire(LimitRequest(callID: "\(algorithm)-2", charges: [charge])).admitted)
                #expect(try await !store.acquire(LimitRequest(callID: "\(algorithm)-3", charges: [charge])).admitted)
                #expect(try await store.refund(try #require(first.receipt)))
                #expect(try await !store.refund(try #require(first.receipt)))
                #expect(try await store.acquire(LimitRequest(callID: "\(algorithm)-4", charges: [charge])).admitted)
            }

            // The script cache flushed behind toolgate's back: EVALSHA answers NOSCRIPT and EVAL (not SCRIPT LOAD,
            // which this user may not run) loads it again.
            #expect(try server.cli("SCRIPT", "FLUSH") == "OK")
            let reloaded = LimitCharge(
                key: "toolgate:{global:_}:reload", counter: "c", rule: "t", scope: .global,
                window: Window(seconds: 60, text: "60s"), max: 2, algorithm: .sliding, cost: 1)
            #expect(try await store.acquire(LimitRequest(callID: "r", charges: [reloaded])).admitted)

            // Approvals: open, list, decide, use.
            let approvals = RedisApprovalStore(deployment: deployment, keyPrefix: "toolgate", logger: testLogger)
            let binding = ApprovalBinding(grant: "g", tool: "deploy", arguments: ["env": "prod"], policySHA256: "p")
            guard case .pending(let request) = try await approvals.start(
                binding, newID: Approval.newID(for: binding), ttlSeconds: 60, creation: .create(maxPendingPerGrant: 5))
            else {
                Issue.record("no approval request opened")
                return
            }
            #expect(try await approvals.list().map(\.id) == [request.id])
            guard case .decided = try await approvals.decide(id: request.id, approve: true) else {
                Issue.record("the approval was not decided")
                return
            }
            #expect(try await approvals.states(ids: [request.id]) == [request.id: .approved])
            #expect(try await approvals.consume(id: request.id))

            // Multi-round states.
            let rounds = RedisRoundStateStore(deployment: deployment, keyPrefix: "toolgate")
            let round = RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "s")
            try await rounds.remember(round, ttlSeconds: 60)
            #expect(try await rounds.take(round))
            #expect(try await !rounds.take(round))

            // Neither CONFIG nor INFO: a warning for /readyz, a standalone Redis all the same, no problem reported.
            let status = RedisStoreStatus(deployment: deployment, logger: testLogger)
            let warnings = try #require(await status.checkEviction())
            #expect(warnings.count == 1)
            #expect(warnings.first?.contains("could not read maxmemory-policy (CONFIG GET refused: NOPERM") == true)
            #expect(await deployment.detectCluster() == false)
            #expect(deployment.problem == nil)
        }
    }

    @Test func waitingForReplicasNeedsNothingMore() async throws {
        try await Self.withACLUser { _, url async throws in
            // No replica: WAIT 1 answers 0 after its timeout, which proves this user may run it.
            let deployment = RedisDeployment(
                client: makeClient(url), logger: testLogger, replicaWait: .init(replicas: 1, timeout: .milliseconds(50)))
            defer { deployment.shutdown() }
            let store = RedisLimitStore(deployment: deployment, keyPrefix: "toolgate", logger: testLogger)
            let charge = LimitCharge(
                key: "toolgate:{global:_}:w", counter: "c", rule: "t", scope: .global,
                window: Window(seconds: 60, text: "60s"), max: 2, algorithm: .fixed, cost: 1)
            let error = await acquireFailure(store, LimitRequest(callID: "1", charges: [charge]))
            #expect(error?.code == .notReplicated)
            #expect(error?.message.contains("only 0 replicas acknowledged") == true)
        }
    }

    @Test func keysOutsideThePrefixAreRefused() async throws {
        // The rules bite: the same user cannot write another prefix's counters (so the test above proves something).
        try await Self.withACLUser { _, url async throws in
            let deployment = RedisDeployment(client: makeClient(url), logger: testLogger)
            defer { deployment.shutdown() }
            let store = RedisLimitStore(deployment: deployment, keyPrefix: "other", logger: testLogger)
            let charge = LimitCharge(
                key: "other:{global:_}:c", counter: "c", rule: "t", scope: .global,
                window: Window(seconds: 60, text: "60s"), max: 2, algorithm: .fixed, cost: 1)
            let error = await acquireFailure(store, LimitRequest(callID: "1", charges: [charge]))
            #expect(error?.message.contains("NOPERM") == true)
        }
    }
}
