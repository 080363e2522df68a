/// What `/readyz` reports about the limit store.
public protocol StoreStatus: Sendable {
    /// `memory` or `redis`.
    var kind: String { get }
    /// For Redis: a PING answered within the Redis timeout (a stopped Redis still accepts TCP connections).
    var isConnected: Bool { get }
    /// Conditions an operator must know about, such as an eviction policy that can silently reset limits.
    var warnings: [String] { get }
    /// Why the store cannot serve calls now (a refused password, an unreachable node, error replies such as a full
    /// Redis's OOM), or nil. `/readyz` shows it, and treats the store as down while it is set.
    var problem: String? { get }
    /// For a Redis Cluster: what toolgate knows of it. Nil for anything else.
    var cluster: ClusterSummary? { get }
}

extension StoreStatus {
    public var cluster: ClusterSummary? { nil }
    public var problem: String? { nil }
}

/// A Redis Cluster as `/readyz` shows it.
public struct ClusterSummary: Sendable, Equatable {
    /// Masters and replicas the cluster lists as reachable (`CLUSTER NODES`, less those flagged failed).
    public var nodes: Int
    public var masters: Int
    /// Of the 16,384 slots, how many have a master.
    public var slotsCovered: Int

    public init(nodes: Int, masters: Int, slotsCovered: Int) {
        self.nodes = nodes
        self.masters = masters
        self.slotsCovered = slotsCovered
    }
}

public struct MemoryStoreStatus: StoreStatus {
    public init() {}
    public var kind: String { "memory" }
    public var isConnected: Bool { true }
    public var warnings: [String] { [] }
}
