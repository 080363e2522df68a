import Foundation
import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

/// `--redis-wait-replicas`: a decision that consumed is admitted only once `WAIT` says the replicas hold it, against a
/// real master and replica (`--replicaof`).
/// The error `acquire` threw, or nil when it answered (then recorded as an issue: these calls must fail).
func acquireFailure(_ store: RedisLimitStore, _ request: LimitRequest) async -> LimitStoreError? {
    do throws(LimitStoreError) {
        let outcome = try await store.acquire(request)
        Issue.record("expected a failure, got \(outcome)")
        return nil
    } catch {
        return error
    }
}

@Suite struct ReplicaWaitTests {
    static func charge(_ key: String, max: Int = 5) -> LimitCharge {
        LimitCharge(key: key, counter: "c", rule: "t", scope: .global, window: Window(seconds: 600, text: "600s"),
                    max: max, algorithm: .fixed, cost: 1)
    }

    /// A master and a replica that has finished its first sync.
    static func withReplicatedPair(_ body: (RedisTestServer, RedisTestServer) async throws -> Void) async throws {
        try await RedisTestServer.with(["--repl-diskless-sync-delay", "0"]) { master async throws in
            try await RedisTestServer.with(["--replicaof", "127.0.0.1", "\(master.port)"]) { replica async throws in
                // Synced, and acknowledging: a replica just past its first sync may not answer WAIT for a moment.
                let linked = await eventually(within: .seconds(20)) {
                    ((try? replica.cli("INFO", "replication")) ?? "").contains("master_link_status:up")
                        && (try? master.cli("WAIT", "1", "100")) == "1"
                }
                try #require(linked, "the replica never synced")
                try await body(master, replica)
            }
        }
    }

    /// A generous WAIT timeout: the machine runs many tests at once, and a replica that is up must never miss it.
    static func store(_ master: RedisTestServer, keepUnreplicated: Bool = false) -> (RedisLimitStore, RedisDeployment) {
        let deployment = RedisDeployment(
            client: makeClient(master.url), logger: testLogger,
            replicaWait: .init(replicas: 1, timeout: .seconds(2), keepUnreplicatedCharges: keepUnreplicated))
        return (RedisLimitStore(deployment: deployment, keyPrefix: "toolgate", logger: testLogger), deployment)
    }

    @Test func admittedWhenTheReplicaHoldsTheWriteAndRefusedAndRefundedWhenItIsGone() async throws {
        try await Self.withReplicatedPair { master, replica async throws in
            let (store, deployment) = Self.store(master)
            defer { deployment.shutdown() }
            let key = "toolgate:{global:_}:wait"
            let first = try await store.acquire(LimitRequest(callID: "1", charges: [Self.charge(key)]))
            #expect(first.admitted)
            // WAIT answered only once the replica had the write: it is there now, with no polling.
            #expect(try replica.cli("HGET", key, "n") == "1")

            replica.kill()
            let error = await acquireFailure(store, LimitRequest(callID: "2", charges: [Self.charge(key)]))
            #expect(error?.code == .notReplicated)
            #expect(error?.message.contains("refunded") == true)
            // The refused call's charge was given back: the counter is where the admitted call left it.
            #expect(try master.cli("HGET", key, "n") == "1")
        }
    }

    @Test func aDenialDoesNotWaitForReplicas() async throws {
        try await Self.withReplicatedPair { master, replica async throws in
            let (store, deployment) = Self.store(master)
            defer { deployment.shutdown() }
            let key = "toolgate:{global:_}:full"
            #expect(try await store.acquire(LimitRequest(callID: "1", charges: [Self.charge(key, max: 1)])).admitted)
            replica.kill()
            // Nothing consumed, nothing to lose in a failover: the denial stands, whatever the replicas say.
            let denied = try await store.acquire(LimitRequest(callID: "2", charges: [Self.charge(key, max: 1)]))
            #expect(!denied.admitted)
        }
    }

    @Test func failModeOpenKeepsTheUnreplicatedCharge() async throws {
        try await Self.withReplicatedPair { master, replica async throws in
            let (store, deployment) = Self.store(master, keepUnreplicated: true)
            defer { deployment.shutdown() }
            let key = "toolgate:{global:_}:open"
            replica.kill()
            let error = await acquireFailure(store, LimitRequest(callID: "1", charges: [Self.charge(key)]))
            #expect(error?.code == .notReplicated)
            // The call goes ahead under fail mode open, so the master keeps counting it.
            #expect(try master.cli("HGET", key, "n") == "1")
        }
    }

    /// A stalled replica (SIGSTOP: connected, silent) under concurrent decisions: each WAIT holds its connection for
    /// its whole timeout, so decisions queue behind one another. Every call is still answered with a failure (none
    /// admitted), and what ran late is given back: the counter ends where it started.
    @Test func aStalledReplicaRefusesEveryCallAndLeavesNothingCharged() async throws {
        try await Self.withReplicatedPair { master, replica async throws in
            var configuration = RedisClient.Configuration(url: master.url, operationTimeout: .milliseconds(200))
            configuration.connections = 2
            let deployment = RedisDeployment(
                client: RedisClient(configuration: configuration, logger: testLogger), logger: testLogger,
                replicaWait: .init(replicas: 1, timeout: .milliseconds(200)))
            defer { deployment.shutdown() }
            let store = RedisLimitStore(deployment: deployment, keyPrefix: "toolgate", logger: testLogger)
            let key = "toolgate:{global:_}:stall"
            replica.pause()
            defer { replica.resume() }
            let admitted = await withTaskGroup(of: Bool.self) { group in
                for n in 0..<24 {
                    group.addTask {
                        (try? await store.acquire(LimitRequest(callID: "c\(n)", charges: [Self.charge(key, max: 100)])))?.admitted ?? false
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(admitted == 0)
            // Given back (0), or never run at all (no counter).
            let settled = await eventually(within: .seconds(20)) { ["0", ""].contains((try? master.cli("HGET", key, "n")) ?? "?") }
            #expect(settled, "counter: \((try? master.cli("HGET", key, "n")) ?? "?")")
        }
    }

    @Test func everyDecisionSendsOneWait() async throws {
        try await Self.withReplicatedPair { master, _ async throws in
            let (store, deployment) = Self.store(master)
            defer { deployment.shutdown() }
            // The first call also loads the script (NOSCRIPT, then EVAL with its own WAIT).
            _ = try await store.acquire(LimitRequest(callID: "warm", charges: [Self.charge("toolgate:{global:_}:count")]))
            _ = try master.cli("CONFIG", "RESETSTAT")
            for n in 0..<20 {
                _ = try await store.acquire(LimitRequest(callID: "\(n)", charges: [Self.charge("toolgate:{global:_}:count")]))
            }
            let stats = try master.cli("INFO", "commandstats")
            #expect(stats.contains("cmdstat_wait:calls=20,"))
        }
    }
}

@Suite struct ClientNameTests {
    @Test func agentIDsBecomeValidClientNames() {
        #expect(RedisClientName.forAgent("host-1.example") == "toolgate:host-1.example")
        #expect(RedisClientName.forAgent("my host\nname\u{0}é") == "toolgate:my_host_name___")
        #expect(RedisClientName.forAgent(String(repeating: "a", count: 500)).utf8.count == "toolgate:".utf8.count + 64)
    }

    @Test func everyConnectionIsNamed() async throws {
        try await RedisTestServer.with { server async throws in
            var configuration = RedisClient.Configuration(url: server.url, connections: 2, operationTimeout: .seconds(5))
            configuration.clientName = RedisClientName.forAgent("agent 7")
            let client = RedisClient(configuration: configuration, logger: testLogger)
            defer { client.shutdown() }
            #expect(await client.ping())
            let named = await eventually(within: .seconds(10)) {
                ((try? server.cli("CLIENT", "LIST")) ?? "").components(separatedBy: "name=toolgate:agent_7 ").count - 1 == 2
            }
            #expect(named)
        }
    }

    @Test func aRefusedClientNameDoesNotStopTheConnection() async throws {
        try await RedisTestServer.with { server async throws in
            _ = try server.cli("ACL", "SETUSER", "noname", "on", ">pw", "~*", "+@all", "-client")
            var configuration = RedisClient.Configuration(
                url: try server.url("noname:pw@"), connections: 1, operationTimeout: .seconds(5))
            configuration.clientName = "toolgate:x"
            let client = RedisClient(configuration: configuration, logger: testLogger)
            defer { client.shutdown() }
            #expect(await client.ping())
            #expect(try await client.send(["ECHO", "still here"]) == .bulk("still here"))
        }
    }
}
