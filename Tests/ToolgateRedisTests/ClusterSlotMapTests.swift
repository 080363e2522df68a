import Testing
@testable import ToolgateRedis

/// The pure parts of Redis Cluster support, with values checked against a real `redis-server` (7.0): key slots,
/// the slot map from `CLUSTER SLOTS`, redirects, and the order of a cross-slot call.
@Suite struct ClusterSlotMapTests {
    /// `CLUSTER KEYSLOT` answers, hash tag rules included.
    @Test(arguments: [
        ("123456789", 12739), ("somekey", 11058), ("foo", 12182), ("bar", 5061), ("{user1000}.following", 3443),
        ("{user1000}.followers", 3443), ("foo{}{bar}", 8363), ("foo{{bar}}zap", 4015), ("foo{bar}{zap}", 5061),
        ("{bar", 4015), ("{", 4092), ("toolgate:{global:_}:c", 11453), ("other:{global:_}:d", 11453),
    ])
    func keySlotsMatchRedis(key: String, slot: Int) {
        #expect(ClusterSlot.of(key) == slot)
    }

    static func node(_ host: String, _ port: Int64, _ id: String = "id") -> RedisValue {
        .array([.bulkString(Array(host.utf8)), .integer(port), .bulkString(Array(id.utf8)), .array([])])
    }

    @Test func slotMapComesFromClusterSlots() throws {
        let reply = RedisValue.array([
            .array([.integer(0), .integer(5460), Self.node("127.0.0.1", 7001), Self.node("127.0.0.1", 7004)]),
            .array([.integer(5461), .integer(10922), Self.node("", 7002)]),
            .array([.integer(10923), .integer(16383), Self.node("10.0.0.3", 7003), Self.node("10.0.0.6", 7006)]),
        ])
        let map = try ClusterSlotMap(parsing: reply, queried: ClusterNode(host: "127.0.0.9", port: 7009))
        #expect(map.master(for: 0) == ClusterNode(host: "127.0.0.1", port: 7001))
        #expect(map.master(for: 5460) == ClusterNode(host: "127.0.0.1", port: 7001))
        // An empty host is the answering node's own.
        #expect(map.master(for: 5461) == ClusterNode(host: "127.0.0.9", port: 7002))
        #expect(map.master(for: 16383) == ClusterNode(host: "10.0.0.3", port: 7003))
        #expect(map.masters.count == 3)
        #expect(map.nodeCount == 5)
        #expect(map.slotsCovered == ClusterSlot.count)
    }

    @Test func uncoveredSlotsHaveNoMaster() throws {
        let reply = RedisValue.array([.array([.integer(0), .integer(99), Self.node("h", 1)])])
        let map = try ClusterSlotMap(parsing: reply, queried: ClusterNode(host: "h", port: 1))
        #expect(map.slotsCovered == 100)
        #expect(map.master(for: 100) == nil)
    }

    @Test(arguments: [
        RedisValue.error("ERR This instance has cluster support disabled"),
        .array([.array([.integer(5), .integer(2), Self.node("h", 1)])]),
        .array([.array([.integer(0), .integer(16384), Self.node("h", 1)])]),
        .array([.array([.integer(0), .integer(1)])]),
        .array([.array([.integer(0), .integer(1), .array([.bulkString(Array("h".utf8)), .integer(0)])])]),
    ])
    func malformedAnswersAreRefused(reply: RedisValue) {
        #expect(throws: RedisError.self) { try ClusterSlotMap(parsing: reply, queried: ClusterNode(host: "h", port: 1)) }
    }

    @Test func redirectsAreRead() {
        #expect(ClusterRedirect(error: "MOVED 3999 127.0.0.1:6381") == .moved(slot: 3999, to: ClusterNode(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect(error: "ASK 3999 10.0.0.2:7000") == .ask(slot: 3999, to: ClusterNode(host: "10.0.0.2", port: 7000)))
        #expect(ClusterRedirect(error: "MOVED 1 [::1]:7000") == .moved(slot: 1, to: ClusterNode(host: "::1", port: 7000)))
        #expect(ClusterRedirect(error: "TRYAGAIN Multiple keys request during rehashing of slot") == .tryAgain)
        #expect(ClusterRedirect(error: "CLUSTERDOWN The cluster is down") == .clusterDown)
        for other in ["NOSCRIPT No matching script", "MOVED 99999 h:1", "MOVED x h:1", "ASK 1 nohostport", "ERR MOVED 1 h:1"] {
            #expect(ClusterRedirect(error: other) == nil, "\(other)")
        }
    }

    @Test func reachableNodesLeaveOutFailedOnes() {
        let text = """
            07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
            67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
            292f 127.0.0.1:30003@40003 master,fail - 1426238316232 1426238315232 3 disconnected
            6ec2 127.0.0.1:30005@40005 slave 67ed 0 1426238316232 5 connected
            824f 127.0.0.1:30006@40006 slave,fail? 292f 0 1426238317741 6 connected
            e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
            aaaa :0@0 noaddr - 0 0 0 disconnected

            """
        #expect(clusterNodesReachable(text) == 5)
    }

    /// A cross-slot call is acquired slot by slot in ascending slot order, whatever order the policy lists its
    /// limits in, and each slot's charges keep their order.
    @Test func crossSlotGroupsAscend() {
        let keys = ["p:{agent:x}:a", "p:{global:_}:g", "p:{agent:x}:b", "p:{grant:y}:c"]
        let groups = RedisLimitStore.slotGroups(keys.enumerated().map { (index: $0.offset, key: $0.element) })
        let slots = groups.map { ClusterSlot.of(keys[$0[0]]) }
        #expect(slots == slots.sorted())
        #expect(groups.count == 3)
        #expect(groups.first { $0.contains(0) } == [0, 2])
        #expect(Set(groups.flatMap { $0 }) == Set(keys.indices))
    }
}
