import Logging
import Testing
import ToolgateCore
import ToolgateTestSupport
@testable import ToolgateRedis

/// `RedisLimitStore` on a real Redis Cluster (DESIGN.md section 7): routing by slot, `MOVED` and `ASK` followed,
/// reserve-then-refund across slots, and the same decisions as the embedded store. Each test starts a three-master
/// cluster of its own (it may reshard it) and stops it when done; one test at a time, so two clusters never start
/// together on a small machine. What the tests inspect in Redis they read with redis-cli, not with the client
/// under test.
@Suite(.serialized, .enabled(if: TestRedisCluster.available, "needs redis-server and redis-cli on PATH"))
struct ClusterStoreTests {
    static let logger = Logger(label: "test-cluster")

    /// Windows of an hour: nothing expires or refills while a test runs, so time never decides.
    static func charge(_ key: String, _ algorithm: LimitAlgorithm, window: Int = 3_600, max: Int, cost: Int = 1) -> LimitCharge {
        LimitCharge(
            key: key, counter: key, rule: "t", scope: .grant, window: Window(seconds: window, text: "\(window)s"), max: max,
            algorithm: algorithm, cost: cost)
    }

    static func key(_ prefix: String, _ subject: String, _ counter: String) -> String {
        "\(prefix):{grant:\(subject)}:\(counter)"
    }

    /// A store whose deployment has one seed, the node on `seed`, and has found out that it is a cluster.
    static func store(on cluster: TestRedisCluster, seed: Int, prefix: String) async throws -> RedisLimitStore {
        var configuration = RedisClient.Configuration(url: cluster.url(seed))
        // Generous: another build may be loading this machine; a timeout here would prove nothing.
        configuration.operationTimeout = .seconds(2)
        let deployment = RedisDeployment(seeds: [cluster.url(seed)], configuration: configuration, logger: logger)
        do {
            #expect(!deployment.isCluster)
            let detected = await deployment.detectCluster()
            try #require(detected == true, "INFO cluster on \(seed) should say cluster_enabled:1")
            #expect(deployment.isCluster)
        } catch {
            deployment.shutdown()
            throw error
        }
        return RedisLimitStore(deployment: deployment, keyPrefix: prefix, logger: logger)
    }

    /// For each master, a subject whose hash tag `{grant:<subject>}` lands in one of its slots.
    static func subjects(on cluster: TestRedisCluster) async throws -> [Int: String] {
        let table = try await cluster.slotTable()
        var found: [Int: String] = [:]
        for i in 0..<100_000 where found.count < cluster.ports.count {
            let subject = "s\(i)"
            let slot = ClusterSlot.of(key("p", subject, "c"))
            if let owner = table.first(where: { $0.slots.contains(slot) })?.port, found[owner] == nil { found[owner] = subject }
        }
        try #require(found.count == cluster.ports.count, "subjects for every master: \(found), table \(table)")
        return found
    }

    static func acquire(_ store: RedisLimitStore, _ id: String, _ charges: [LimitCharge]) async throws -> LimitOutcome {
        try await store.acquire(LimitRequest(callID: id, charges: charges))
    }

    /// Waits (up to 3 s) until the client's slot map says `port` serves `slot`.
    static func waitForMap(_ client: RedisClusterClient, slot: Int, port: Int) async throws -> Int? {
        let deadline = ContinuousClock.now + .seconds(3)
        while client.map?.master(for: slot)?.port != port, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        return client.map?.master(for: slot)?.port
    }

    // MARK: a. Routing

    /// One seed is enough: the store learns the map and sends each counter to the master of its slot.
    @Test func eachCounterLivesOnTheMasterOfItsSlot() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "route"
        let store = try await Self.store(on: cluster, seed: cluster.ports[1], prefix: prefix)
        defer { store.deployment.shutdown() }
        let subjects = try await Self.subjects(on: cluster)
        let algorithms: [LimitAlgorithm] = [.sliding, .fixed, .tokenBucket]
        var charges: [Int: LimitCharge] = [:]
        for (index, port) in cluster.ports.enumerated() {
            charges[port] = Self.charge(Self.key(prefix, subjects[port]!, "calls"), algorithms[index], max: 5)
        }
        // Redis keeps a key only on its slot's master whoever is asked, so where the keys end up proves little on
        // its own: the nodes' statistics show that every script went straight to the right master.
        for port in cluster.ports { _ = try await cluster.cli(port, "CONFIG", "RESETSTAT") }

        for port in cluster.ports {
            let charge = charges[port]!
            let outcome = try await Self.acquire(store, "one-\(port)", [charge])
            #expect(outcome.admitted, "\(charge.key)")
            #expect(outcome.results.map(\.remaining) == [4], "\(charge.key)")
        }
        // One call across all three masters (reserve-then-refund's admitted path): every counter counts it once.
        let all = cluster.ports.map { charges[$0]! }
        let outcome = try await Self.acquire(store, "all", all)
        #expect(outcome.admitted)
        #expect(outcome.results.map(\.remaining) == [3, 3, 3])
        #expect(outcome.receipt?.items.count == 3)

        let client = try #require(store.deployment.cluster)
        let map = try #require(client.map)
        #expect(map.masters.count == 3)
        #expect(map.slotsCovered == ClusterSlot.count)
        let expectedType: [LimitAlgorithm: String] = [.sliding: "zset", .fixed: "hash", .tokenBucket: "hash"]
        for port in cluster.ports {
            let charge = charges[port]!
            let slot = ClusterSlot.of(charge.key)
            // The store's slot function is Redis's.
            #expect(try await cluster.integer(port, "CLUSTER", "KEYSLOT", charge.key) == slot)
            #expect(try await cluster.master(forSlot: slot) == port)
            #expect(map.master(for: slot) == ClusterNode(host: "127.0.0.1", port: port))
            #expect(try await cluster.integer(port, "EXISTS", charge.key) == 1, "\(charge.key) on its master \(port)")
            #expect(try await cluster.cli(port, "TYPE", charge.key) == expectedType[charge.algorithm])
            // No other node holds anything in that slot.
            for other in cluster.ports where other != port {
                #expect(try await cluster.integer(other, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 0, "slot \(slot) on \(other)")
            }
            // Its two calls ran here, none redirected: EVALSHA twice (a fresh node answers the first with NOSCRIPT,
            // and the store sends EVAL once).
            let evalsha = try await cluster.stat(port, section: "commandstats", line: "cmdstat_evalsha", field: "calls")
            let eval = try await cluster.stat(port, section: "commandstats", line: "cmdstat_eval", field: "calls")
            #expect(evalsha == 2 && eval == 1, "scripts run on \(port): EVALSHA \(evalsha), EVAL \(eval)")
            #expect(try await cluster.stat(port, section: "commandstats", line: "cmdstat_evalsha", field: "rejected_calls") == 0)
            #expect(try await cluster.stat(port, section: "errorstats", line: "errorstat_MOVED", field: "count") == 0)
            #expect(try await cluster.stat(port, section: "errorstats", line: "errorstat_ASK", field: "count") == 0)
        }
    }

    // MARK: b. MOVED

    /// A slot moved to another master after the map was loaded: the old owner answers MOVED, the store follows it,
    /// keeps counting where the counter now lives, and refreshes its map.
    @Test func aSlotMovedAfterTheMapWasLoadedIsFollowed() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "moved"
        let store = try await Self.store(on: cluster, seed: cluster.ports[0], prefix: prefix)
        defer { store.deployment.shutdown() }
        let subjects = try await Self.subjects(on: cluster)
        let (from, to) = (cluster.ports[1], cluster.ports[2])
        let charge = Self.charge(Self.key(prefix, subjects[from]!, "calls"), .sliding, max: 3)
        let slot = ClusterSlot.of(charge.key)
        for n in 1...2 {
            let outcome = try await Self.acquire(store, "m\(n)", [charge])
            #expect(outcome.admitted)
            #expect(outcome.results[0].remaining == 3 - n)
        }
        let client = try #require(store.deployment.cluster)
        #expect(client.map?.master(for: slot)?.port == from)

        _ = try await cluster.cli(from, "CONFIG", "RESETSTAT")
        try await cluster.moveSlot(slot, from: from, to: to)
        for port in cluster.ports { #expect(try await cluster.master(forSlot: slot, asSeenBy: port) == to, "as \(port) sees it") }
        #expect(try await cluster.integer(to, "EXISTS", charge.key) == 1)
        #expect(try await cluster.integer(from, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 0)
        // Nothing has told the client yet: its next call goes to the old owner.
        #expect(client.map?.master(for: slot)?.port == from)
        // A refresh asked for within `refreshSpacing` of the previous one is dropped, not deferred (the MOVED is
        // still followed); the map was loaded just before the first call, so wait that out.
        try await Task.sleep(for: RedisClusterClient.refreshSpacing * 2)

        let third = try await Self.acquire(store, "m3", [charge])
        #expect(third.admitted, "the call after the move")
        #expect(third.results[0].remaining == 0, "counting continues from the two calls before the move")
        let fourth = try await Self.acquire(store, "m4", [charge])
        #expect(!fourth.admitted)
        #expect(fourth.results[0].remaining == 0)
        #expect(try await cluster.stat(from, section: "errorstats", line: "errorstat_MOVED", field: "count") >= 1)
        // The third call is in the log on the new owner; nothing was recreated on the old one.
        #expect(try await cluster.cli(to, "ZSCORE", charge.key, "m3:1") != "")
        #expect(try await cluster.cli(to, "ZSCORE", charge.key, "m4:1") == "")
        #expect(try await cluster.integer(from, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 0)

        // MOVED refreshed the map; later calls go straight to the new owner.
        #expect(try await Self.waitForMap(client, slot: slot, port: to) == to)
        _ = try await cluster.cli(from, "CONFIG", "RESETSTAT")
        let other = Self.charge(Self.key(prefix, subjects[from]!, "other"), .fixed, max: 2)
        #expect(try await Self.acquire(store, "m5", [other]).admitted)
        #expect(try await cluster.integer(to, "EXISTS", other.key) == 1)
        #expect(try await cluster.stat(from, section: "errorstats", line: "errorstat_MOVED", field: "count") == 0)
    }

    // MARK: c. ASK

    /// A slot mid-migration whose counter was already migrated: the source answers ASK, the store retries on the
    /// target after ASKING, and counting continues from the migrated state. After the migration ends, calls
    /// still work.
    @Test func aCounterMidMigrationIsReachedThroughAsk() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "ask"
        let store = try await Self.store(on: cluster, seed: cluster.ports[2], prefix: prefix)
        defer { store.deployment.shutdown() }
        let subjects = try await Self.subjects(on: cluster)
        let (from, to) = (cluster.ports[0], cluster.ports[1])
        let charge = Self.charge(Self.key(prefix, subjects[from]!, "calls"), .sliding, max: 3)
        let slot = ClusterSlot.of(charge.key)
        for n in 1...2 {
            let outcome = try await Self.acquire(store, "a\(n)", [charge])
            #expect(outcome.admitted)
            #expect(outcome.results[0].remaining == 3 - n)
        }
        let client = try #require(store.deployment.cluster)
        #expect(client.map?.master(for: slot)?.port == from)

        for port in [from, to] { _ = try await cluster.cli(port, "CONFIG", "RESETSTAT") }
        try await cluster.beginMigration(slot: slot, from: from, to: to)
        #expect(try await cluster.migrateKeys(slot: slot, from: from, to: to) == [charge.key])
        #expect(try await cluster.integer(from, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 0)
        #expect(try await cluster.integer(to, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 1)

        let third = try await Self.acquire(store, "a3", [charge])
        #expect(third.admitted, "the call during the migration")
        #expect(third.results[0].remaining == 0, "counting continues from the migrated log")
        let fourth = try await Self.acquire(store, "a4", [charge])
        #expect(!fourth.admitted, "the fourth call in the window")
        #expect(fourth.results[0].remaining == 0)
        // Answered by the target after ASK + ASKING: without ASKING the importing target would answer MOVED.
        let asks = try await cluster.stat(from, section: "errorstats", line: "errorstat_ASK", field: "count")
        let askings = try await cluster.stat(to, section: "commandstats", line: "cmdstat_asking", field: "calls")
        #expect(asks >= 2, "ASK replies from the source")
        #expect(askings >= 2, "ASKING on the target")
        #expect(try await cluster.stat(to, section: "errorstats", line: "errorstat_MOVED", field: "count") == 0)
        // ASK is one-off: the map still names the source, and the source holds nothing in the slot.
        #expect(client.map?.master(for: slot)?.port == from)
        #expect(try await cluster.integer(from, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == 0)

        // The migration ends; calls still work (MOVED from the old owner now) and the count still holds.
        try await cluster.assign(slot: slot, to: to)
        for port in cluster.ports { #expect(try await cluster.master(forSlot: slot, asSeenBy: port) == to, "as \(port) sees it") }
        try await Task.sleep(for: RedisClusterClient.refreshSpacing * 2)  // so the MOVED's refresh is not dropped
        let fifth = try await Self.acquire(store, "a5", [charge])
        #expect(!fifth.admitted)
        #expect(fifth.results[0].remaining == 0)
        let other = Self.charge(Self.key(prefix, subjects[from]!, "other"), .tokenBucket, max: 2)
        let sixth = try await Self.acquire(store, "a6", [other])
        #expect(sixth.admitted)
        #expect(sixth.results[0].remaining == 1)
        #expect(try await cluster.integer(to, "EXISTS", other.key) == 1)
        #expect(try await Self.waitForMap(client, slot: slot, port: to) == to)
    }

    // MARK: d. Reserve-then-refund

    /// Two subjects, the lower slot on the first master and the higher on the third.
    static func lowAndHigh(_ cluster: TestRedisCluster) async throws -> (low: String, high: String) {
        let subjects = try await subjects(on: cluster)
        let (low, high) = (subjects[cluster.ports[0]]!, subjects[cluster.ports[2]]!)
        try #require(ClusterSlot.of(key("p", low, "c")) < ClusterSlot.of(key("p", high, "c")))
        return (low, high)
    }

    /// The lower slot is reserved first; the higher slot's counter is exhausted, so the call is denied and the
    /// reservation given back: the lower counter is left as it was, whatever its algorithm and the charges' order.
    @Test func aDenialInAHigherSlotGivesBackTheLowerSlotsReservation() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "reserve"
        let store = try await Self.store(on: cluster, seed: cluster.ports[0], prefix: prefix)
        defer { store.deployment.shutdown() }
        let (lowSubject, highSubject) = try await Self.lowAndHigh(cluster)
        for algorithm in LimitAlgorithm.allCases {
            let name = algorithm.rawValue
            let low = Self.charge(Self.key(prefix, lowSubject, name), algorithm, max: 3)
            let high = Self.charge(Self.key(prefix, highSubject, name), .fixed, max: 1)
            #expect(try await Self.acquire(store, "\(name)-exhaust", [high]).admitted)
            #expect(try await Self.acquire(store, "\(name)-first", [low]).results[0].remaining == 2)

            for (n, charges) in [[low, high], [high, low]].enumerated() {
                let id = "\(name)-denied-\(n)"
                let denied = try await Self.acquire(store, id, charges)
                let lowIndex = charges.firstIndex(of: low)!
                #expect(!denied.admitted, "\(id)")
                #expect(denied.receipt == nil, "\(id)")
                #expect(denied.results[1 - lowIndex].passed == false, "\(id): the exhausted counter")
                #expect(denied.results[lowIndex].passed, "\(id): the lower slot was reserved")
                if algorithm == .sliding {
                    // The reservation's log member is gone again.
                    #expect(try await cluster.cli(cluster.ports[0], "ZSCORE", low.key, "\(id):1") == "", "\(id)")
                }
            }
            // Two denied calls reserved and gave back: the lower counter has had one call, and now a second.
            let after = try await Self.acquire(store, "\(name)-after", [low])
            #expect(after.admitted, "\(name)")
            #expect(after.results[0].remaining == 1, "\(name): the lower counter after two denied calls that reserved it")
        }
    }

    /// A call admitted on two slots gets one receipt; its refund gives back both, whatever the algorithm.
    @Test func aRefundAcrossSlotsGivesBackEverySlot() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "refund"
        let store = try await Self.store(on: cluster, seed: cluster.ports[2], prefix: prefix)
        defer { store.deployment.shutdown() }
        let (lowSubject, highSubject) = try await Self.lowAndHigh(cluster)
        for algorithm in LimitAlgorithm.allCases {
            let name = algorithm.rawValue
            let low = Self.charge(Self.key(prefix, lowSubject, name), algorithm, max: 3)
            let high = Self.charge(Self.key(prefix, highSubject, name), algorithm, max: 3)
            let call = try await Self.acquire(store, "\(name)-call", [high, low])
            #expect(call.admitted, "\(name)")
            #expect(call.results.map(\.remaining) == [2, 2], "\(name)")
            let receipt = try #require(call.receipt, "\(name)")
            #expect(Set(receipt.items.map(\.key)) == [low.key, high.key], "\(name)")
            #expect(try await store.refund(receipt), "\(name): the first refund")
            #expect(!(try await store.refund(receipt)), "\(name): a second refund of the same call")

            let lowAfter = try await Self.acquire(store, "\(name)-low", [low])
            let highAfter = try await Self.acquire(store, "\(name)-high", [high])
            #expect(lowAfter.results[0].remaining == 2, "\(name): the lower slot's counter after the refund (1 = not given back)")
            #expect(highAfter.results[0].remaining == 2, "\(name): the higher slot's counter after the refund (1 = not given back)")
        }
    }

    /// A token bucket's reservation, given back when a higher slot denies, must not use up the refund of an earlier
    /// call: the embedded store (where the denied call never consumed) and a run without the denied call both give
    /// the earlier call's token back.
    @Test func aGivenBackReservationLeavesAnEarlierCallsBucketRefundWhole() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "bucket-refund"
        let store = try await Self.store(on: cluster, seed: cluster.ports[1], prefix: prefix)
        defer { store.deployment.shutdown() }
        let memory = InMemoryLimitStore(clock: SystemWallClock())
        let (lowSubject, highSubject) = try await Self.lowAndHigh(cluster)
        let high = Self.charge(Self.key(prefix, highSubject, "exhausted"), .fixed, max: 1)
        #expect(try await Self.acquire(store, "exhaust", [high]).admitted)
        #expect(memory.acquireNow(LimitRequest(callID: "exhaust", charges: [high])).admitted)

        for deniedBetween in [false, true] {
            let name = deniedBetween ? "with" : "without"
            let bucket = Self.charge(Self.key(prefix, lowSubject, "bucket-\(name)"), .tokenBucket, max: 2)
            var remaining: [String: Int] = [:]
            for (label, limits) in [("cluster", store as any LimitStore), ("memory", memory as any LimitStore)] {
                let first = try await limits.acquire(LimitRequest(callID: "\(name)-x", charges: [bucket]))
                #expect(first.admitted && first.results[0].remaining == 1, "\(label) \(name)")
                if deniedBetween {
                    let denied = try await limits.acquire(LimitRequest(callID: "\(name)-denied", charges: [bucket, high]))
                    #expect(!denied.admitted, "\(label)")
                }
                #expect(try await limits.refund(try #require(first.receipt)), "\(label) \(name)")
                remaining[label] = try await limits.acquire(LimitRequest(callID: "\(name)-next", charges: [bucket])).results[0].remaining
            }
            // The refund gave the token back: the next call finds the bucket full (2) and leaves 1.
            #expect(remaining["memory"] == 1, "memory, \(name) a denied call in between")
            if deniedBetween {
                // Known and on the safe side: the reservation's give-back counts as a refund (refund.lua), which
                // bounds the earlier call's refund to nothing, so the cluster denies more than memory until the
                // bucket refills. An exact undo needs the bucket's state from before the reservation in the receipt.
                // This fails (the known issue is not recorded) once that is fixed, so the test is updated then.
                withKnownIssue("a cross-slot reservation's give-back uses up an earlier call's token-bucket refund") {
                    #expect(remaining["cluster"] == 1, "cluster, with a denied call in between (0 = the refund was lost)")
                }
            } else {
                #expect(remaining["cluster"] == 1, "cluster, without a denied call in between (0 = the refund was lost)")
            }
        }
    }

    // MARK: e. The same decisions as the embedded store

    /// Random calls of one to three limits (sliding, fixed, token bucket; in one slot, or across slots on one master
    /// or several), on the cluster and then replayed on `InMemoryLimitStore` with its clock at each decision's Redis
    /// time, as StoreEquivalenceTests does; with hour-long windows, time decides nothing. Compared: admitted or
    /// denied, and `passed` and `remaining` of every limit the cluster evaluated (a cross-slot call stops at the
    /// first slot that denies). Not compared: `retryAfterMicros` and receipts, which carry each slot's own decision
    /// time and the call that created each counter (on a cluster a reservation that was given back may have
    /// created it); the replay has only one time per call. `refunds` mixes in refunds of earlier calls, except of
    /// calls that consumed a token bucket: aRefundAcrossSlotsGivesBackEverySlot and
    /// aGivenBackReservationLeavesAnEarlierCallsBucketRefundWhole show those on their own.
    @Test(arguments: [(seed: 11 as UInt64, refunds: false), (seed: 12, refunds: true)])
    func randomCallsDecideAsTheEmbeddedStoreDoes(seed: UInt64, refunds: Bool) async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let prefix = "equal-\(seed)"
        let store = try await Self.store(on: cluster, seed: cluster.ports[Int(seed) % 3], prefix: prefix)
        defer { store.deployment.shutdown() }
        let subjects = try await Self.subjects(on: cluster)
        // A fourth subject shares a master with the first, not its slot.
        var names = cluster.ports.map { subjects[$0]! }
        let table = try await cluster.slotTable()
        let firstSlot = ClusterSlot.of(Self.key(prefix, names[0], "c"))
        let firstOwner = table.first { $0.slots.contains(firstSlot) }!.port
        for i in 0..<100_000 {
            let slot = ClusterSlot.of(Self.key(prefix, "t\(i)", "c"))
            if slot != firstSlot, table.first(where: { $0.slots.contains(slot) })?.port == firstOwner {
                names.append("t\(i)")
                break
            }
        }
        try #require(names.count == 4)
        var rng = SeededGenerator(seed: seed)
        var limits: [LimitCharge] = []
        for subject in names {
            for algorithm in LimitAlgorithm.allCases {
                let max = 3 + Int(rng.next() % 6)
                let cost = rng.next() % 4 == 0 ? 2 : 1
                limits.append(Self.charge(Self.key(prefix, subject, algorithm.rawValue), algorithm, max: max, cost: cost))
            }
        }

        enum Step {
            case acquire(String, [LimitCharge])
            /// Of an earlier admitted call, picked when the cluster runs (by this number) among those that consumed
            /// no token bucket; sometimes one refunded already.
            case refund(pick: UInt64)
        }
        var steps: [Step] = []
        for i in 0..<80 {
            if refunds, i > 0, rng.next() % 4 == 0 {
                steps.append(.refund(pick: rng.next()))
                continue
            }
            var chosen: [LimitCharge] = []
            let count = 1 + Int(rng.next() % 3)
            while chosen.count < count {
                let limit = limits[Int(rng.next() % UInt64(limits.count))]
                if !chosen.contains(limit) { chosen.append(limit) }
            }
            steps.append(.acquire("c\(i)", chosen))
        }
        func refundable(_ receipt: LimitReceipt?) -> LimitReceipt? {
            guard let receipt, !receipt.items.contains(where: { $0.algorithm == .tokenBucket }) else { return nil }
            return receipt
        }

        // The cluster, in real time.
        var outcomes: [String: LimitOutcome] = [:]
        var refundableIDs: [String] = []
        var refunded: [Int: (id: String, applied: Bool)] = [:]
        for (index, step) in steps.enumerated() {
            switch step {
            case .acquire(let id, let charges):
                let outcome = try await Self.acquire(store, id, charges)
                outcomes[id] = outcome
                if refundable(outcome.receipt) != nil { refundableIDs.append(id) }
            case .refund(let pick):
                guard !refundableIDs.isEmpty else { continue }
                // Mostly one of the last few calls.
                let id = refundableIDs[refundableIDs.count - 1 - Int(pick % UInt64(min(refundableIDs.count, 4)))]
                refunded[index] = (id, try await store.refund(outcomes[id]!.receipt!))
            }
        }

        // The embedded store, replayed at the cluster's decision times.
        let clock = ManualWallClock(micros: 0)
        let memory = InMemoryLimitStore(clock: clock)
        var memoryReceipts: [String: LimitReceipt] = [:]
        var (admitted, denied, acrossSlots, refundsCompared) = (0, 0, 0, 0)
        for (index, step) in steps.enumerated() {
            switch step {
            case .acquire(let id, let charges):
                let expected = outcomes[id]!
                clock.set(micros: expected.decidedAtMicros)
                let actual = memory.acquireNow(LimitRequest(callID: id, charges: charges))
                memoryReceipts[id] = actual.receipt
                let slots = charges.map { ClusterSlot.of($0.key) }
                let described = charges.map { "\($0.key.split(separator: ":").dropFirst().joined(separator: ":")) max \($0.max) cost \($0.cost)" }
                #expect(expected.admitted == actual.admitted, "call \(id) \(described): cluster \(expected.results), memory \(actual.results)")
                if expected.admitted { admitted += 1 } else { denied += 1 }
                if Set(slots).count > 1 { acrossSlots += 1 }
                // Slot by slot in ascending order, stopping at the first denial: the slots evaluated agree with memory.
                let denying = charges.indices.filter { !expected.results[$0].passed }.map { slots[$0] }.min() ?? Int.max
                for i in charges.indices where slots[i] <= denying {
                    let (c, m) = (expected.results[i], actual.results[i])
                    #expect(c.passed == m.passed && c.remaining == m.remaining, "call \(id) \(described): limit \(i): cluster \(c), memory \(m)")
                }
                if expected.admitted, actual.admitted {
                    #expect(Set(expected.receipt?.items.map(\.key) ?? []) == Set(actual.receipt?.items.map(\.key) ?? []), "call \(id)")
                }
            case .refund:
                guard let (id, clusterApplied) = refunded[index] else { continue }
                let applied = refundable(memoryReceipts[id]).map { memory.refundNow($0) } ?? false
                #expect(applied == clusterApplied, "refund of \(id)")
                refundsCompared += 1
            }
        }
        // The traffic was mixed enough to mean something.
        #expect(admitted >= 10)
        #expect(denied >= 10)
        #expect(acrossSlots >= 20)
        if refunds { #expect(refundsCompared >= 5) }
    }

    // MARK: Spend caps and approvals on a cluster

    /// The spend cap of SpendCapTests (1000 a day: 400, 400 pass, 300 refused, 200 passes, 1 refused), with every
    /// algorithm, on a cluster.
    @Test func aSpendCapStopsAtTheRightTotal() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let store = try await Self.store(on: cluster, seed: cluster.ports[0], prefix: "spend")
        defer { store.deployment.shutdown() }
        for algorithm in LimitAlgorithm.allCases {
            let admitted = try await SharedRedisTests.SpendCapTests.run(store, algorithm, prefix: "spend-\(algorithm.rawValue)")
            #expect(admitted == SharedRedisTests.SpendCapTests.amounts.map(\.1), "\(algorithm)")
        }
    }

    /// Approvals live in one slot of the cluster, whichever node the deployment was seeded with: asked for, listed,
    /// decided, seen and used once, through two deployments seeded on different masters (two sidecars).
    @Test func approvalsWorkAcrossTwoSidecars() async throws {
        let cluster = try await TestRedisCluster.start()
        defer { cluster.stop() }
        let a = try await Self.store(on: cluster, seed: cluster.ports[0], prefix: "appr")
        let b = try await Self.store(on: cluster, seed: cluster.ports[2], prefix: "appr")
        defer {
            a.deployment.shutdown()
            b.deployment.shutdown()
        }
        let storeA = RedisApprovalStore(deployment: a.deployment, keyPrefix: "appr", logger: Self.logger)
        let storeB = RedisApprovalStore(deployment: b.deployment, keyPrefix: "appr", logger: Self.logger)
        let binding = ApprovalBinding(grant: "g", tool: "deploy", arguments: ["env": "prod"], policySHA256: "p")
        guard case .pending(let request) = try await storeA.start(binding, newID: Approval.newID(for: binding), ttlSeconds: 60, creation: .create(maxPendingPerGrant: 10)) else {
            Issue.record("no request opened")
            return
        }
        #expect(try await storeB.list().map(\.id) == [request.id])
        #expect(try await storeB.decide(id: request.id, approve: true) == .decided(
            Approval(
                id: request.id, state: .approved, grant: "g", tool: "deploy", arguments: #"{"env":"prod"}"#, policySHA256: "p",
                createdAtMillis: request.createdAtMillis, expiresAtMillis: request.expiresAtMillis)))
        #expect(try await storeA.states(ids: [request.id]) == [request.id: .approved])
        #expect(try await storeA.start(binding, newID: Approval.newID(for: binding), ttlSeconds: 60, creation: .create(maxPendingPerGrant: 10)) == .approved(id: request.id))
        #expect(try await storeA.consume(id: request.id))
        #expect(try await storeB.consume(id: request.id) == false)
        if case .pending(let next) = try await storeB.start(binding, newID: Approval.newID(for: binding), ttlSeconds: 60, creation: .create(maxPendingPerGrant: 10)) {
            #expect(next.id != request.id)
        } else {
            Issue.record("a used approval passed again")
        }
        // Every approval key is in the one {approvals:_} slot.
        let slot = ClusterSlot.of("appr:{approvals:_}:index")
        #expect(ClusterSlot.of(storeA.recordKey(binding.key)) == slot)
        #expect(ClusterSlot.of(storeA.openKey(grant: binding.grant)) == slot)
    }
}
