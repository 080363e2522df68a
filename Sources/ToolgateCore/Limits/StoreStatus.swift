/// What `/readyz` reports about the limit store.
public protocol StoreStatus: Sendable {
    /// `memory` or `redis`.
    var kind: String { get }
    /// For Redis: a PING answered within the Redis timeout (a stopped Redis still accepts TCP connections).
    var isConnected: Bool { get }
    /// Conditions an operator must know about, such as an eviction policy that can silently reset limits.
    var warnings: [String] { get }
}

public struct MemoryStoreStatus: StoreStatus {
    public init() {}
    public var kind: String { "memory" }
    public var isConnected: Bool { true }
    public var warnings: [String] { [] }
}
