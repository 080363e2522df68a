import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

/// `--redis-wait-replicas` on a Redis Cluster with a replica per master: `WAIT` goes to the master of each slot that
/// was written, right behind that slot's script; a slot whose replica is gone gives back the whole call.
@Suite(.serialized, .enabled(if: TestRedisCluster.available, "needs redis-server and redis-cli on PATH"))
struct ClusterReplicaWaitTests {
    static let logger = Logger(label: "test-cluster-wait")

    @Test func waitGoesToEachWrittenSlotsMasterAndAMissingReplicaRefundsTheWholeCall() async throws {
        let cluster = try await TestRedisCluster.start(masters: 3, replicas: 1)
        defer { cluster.stop() }
        let masters = Array(cluster.ports.prefix(3))
        var configuration = RedisClient.Configuration(url: cluster.url(masters[0]))
        configuration.operationTimeout = .seconds(2)
        let deployment = RedisDeployment(
            seeds: masters.map { cluster.url($0) }, configuration: configuration, logger: Self.logger,
            replicaWait: .init(replicas: 1, timeout: .seconds(2)))
        defer { deployment.shutdown() }
        let store = RedisLimitStore(deployment: deployment, keyPrefix: "toolgate", logger: Self.logger)

        // Two counters on two different masters.
        let table = try await cluster.slotTable()
        func owner(_ key: String) -> Int? { table.first { $0.slots.contains(ClusterSlot.of(key)) }?.port }
        let first = "toolgate:{global:_}:a"
        let firstMaster = try #require(owner(first))
        let second = try #require(
            (0..<10_000).lazy.map { "toolgate:{grant:s\($0)}:b" }.first { owner($0) != nil && owner($0) != firstMaster })
        let secondMaster = try #require(owner(second))
        func charges() -> [LimitCharge] {
            [first, second].map {
                LimitCharge(key: $0, counter: $0, rule: "t", scope: .grant, window: Window(seconds: 3_600, text: "3600s"),
                            max: 10, algorithm: .fixed, cost: 1)
            }
        }
        // Scripts loaded (NOSCRIPT, then EVAL, each with its WAIT) before counting.
        #expect(try await store.acquire(LimitRequest(callID: "warm", charges: charges())).admitted)
        for port in masters { _ = try await cluster.cli(port, "CONFIG", "RESETSTAT") }

        #expect(try await store.acquire(LimitRequest(callID: "1", charges: charges())).admitted)
        for port in masters {
            let waits = try await cluster.stat(port, section: "commandstats", line: "cmdstat_wait", field: "calls")
            #expect(waits == ([firstMaster, secondMaster].contains(port) ? 1 : 0), "WAIT calls on \(port)")
        }
        // The second slot's replica gone: that slot's charge and the first slot's (already admitted) are given back.
        let replicas = try await cluster.replicaPorts(of: secondMaster)
        try #require(replicas.count == 1, "the replica of \(secondMaster): \(replicas)")
        for replica in replicas { cluster.killNode(replica) }
        do throws(LimitStoreError) {
            let outcome = try await store.acquire(LimitRequest(callID: "2", charges: charges()))
            Issue.record("admitted although a slot's replica is gone: \(outcome)")
        } catch {
            #expect(error.code == .notReplicated)
        }
        #expect(try await cluster.cli(firstMaster, "HGET", first, "n") == "2")
        #expect(try await cluster.cli(secondMaster, "HGET", second, "n") == "2")
    }
}
