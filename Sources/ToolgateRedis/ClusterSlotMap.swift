/// A Redis Cluster node's address as the cluster announces it.
public struct ClusterNode: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Which master serves each of the 16,384 slots, from a `CLUSTER SLOTS` reply. Plain data: tested directly.
public struct ClusterSlotMap: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public var slots: ClosedRange<Int>
        public var master: ClusterNode
        public var replicas: [ClusterNode]
    }

    public let ranges: [Range]
    /// Per slot, an index into `masters`, or -1 when no node serves it.
    private let owner: [Int16]
    public let masters: [ClusterNode]

    public init(ranges: [Range]) {
        self.ranges = ranges
        var masters: [ClusterNode] = []
        var owner = [Int16](repeating: -1, count: ClusterSlot.count)
        for range in ranges {
            let index: Int
            if let known = masters.firstIndex(of: range.master) {
                index = known
            } else {
                masters.append(range.master)
                index = masters.count - 1
            }
            for slot in range.slots { owner[slot] = Int16(index) }
        }
        self.masters = masters
        self.owner = owner
    }

    public func master(for slot: Int) -> ClusterNode? {
        let index = owner[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    public var slotsCovered: Int { owner.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// Masters and replicas.
    public var nodeCount: Int { Set(ranges.flatMap { [$0.master] + $0.replicas }).count }

    /// `queried`: the node that answered, whose host stands in for an empty or `?` host in the reply (Redis
    /// announces its own address that way when it does not know it).
    public init(parsing reply: RedisValue, queried: ClusterNode) throws(RedisError) {
        guard case .array(let entries?) = reply else {
            throw .protocolError("CLUSTER SLOTS answered \(reply), not a list of slot ranges")
        }
        var ranges: [Range] = []
        for entry in entries {
            guard case .array(let fields?) = entry, fields.count >= 3, case .integer(let start) = fields[0],
                case .integer(let end) = fields[1], 0 <= start, start <= end, end < ClusterSlot.count
            else { throw .protocolError("CLUSTER SLOTS sent a malformed slot range: \(entry)") }
            var nodes: [ClusterNode] = []
            for field in fields[2...] {
                guard case .array(let parts?) = field, parts.count >= 2, case .integer(let port) = parts[1],
                    (1...65_535).contains(port)
                else { throw .protocolError("CLUSTER SLOTS sent a malformed node: \(field)") }
                var host = ""
                if case .bulkString(let bytes?) = parts[0] { host = String(decoding: bytes, as: UTF8.self) }
                if host.isEmpty || host == "?" { host = queried.host }
                nodes.append(ClusterNode(host: host, port: Int(port)))
            }
            ranges.append(Range(slots: Int(start)...Int(end), master: nodes[0], replicas: Array(nodes.dropFirst())))
        }
        self.init(ranges: ranges)
    }

    public static func == (a: ClusterSlotMap, b: ClusterSlotMap) -> Bool { a.ranges == b.ranges }
}

/// Nodes a `CLUSTER NODES` answer lists as reachable: every line except those flagged `fail`, `noaddr` or
/// `handshake`. `CLUSTER SLOTS` is not enough for this: it leaves out a replica until its master has heard of a
/// non-zero replication offset, which on an idle cluster can take the 10 s of the first replication ping.
public func clusterNodesReachable(_ text: String) -> Int {
    text.split(whereSeparator: \.isNewline).reduce(0) { count, line in
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { return count }
        let flags = fields[2].split(separator: ",")
        return flags.contains { $0 == "fail" || $0 == "noaddr" || $0 == "handshake" } ? count : count + 1
    }
}

/// What a cluster node's error reply asks of the client.
public enum ClusterRedirect: Sendable, Equatable {
    /// The slot lives elsewhere for good: refresh the map and retry there.
    case moved(slot: Int, to: ClusterNode)
    /// The slot is being migrated and this key already moved: retry there once, after `ASKING`.
    case ask(slot: Int, to: ClusterNode)
    /// A multi-key command met a slot mid-migration with its keys split: retry shortly.
    case tryAgain
    /// The cluster cannot serve (slots uncovered, or a failover under way).
    case clusterDown

    public init?(error message: String) {
        if message.hasPrefix("TRYAGAIN") { self = .tryAgain; return }
        if message.hasPrefix("CLUSTERDOWN") { self = .clusterDown; return }
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            (0..<ClusterSlot.count).contains(slot), let colon = parts[2].lastIndex(of: ":"),
            let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let node = ClusterNode(host: host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, to: node) : .ask(slot: slot, to: node)
    }
}
