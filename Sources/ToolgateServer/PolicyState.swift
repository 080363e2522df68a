import Synchronization
import ToolgateCore

/// The policy in force. A reload swaps it whole; a request keeps the snapshot it started with.
public final class PolicyState: Sendable {
    public struct Snapshot: Sendable {
        public let policy: Policy
        public let evaluator: Evaluator
        public let toolListFilter: ToolListFilter
    }

    private let current: Mutex<Snapshot>
    public let keyPrefix: String

    public init(policy: Policy, keyPrefix: String) {
        self.keyPrefix = keyPrefix
        current = Mutex(Self.snapshot(policy, keyPrefix: keyPrefix))
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    public func replace(with policy: Policy) {
        let next = Self.snapshot(policy, keyPrefix: keyPrefix)
        current.withLock { $0 = next }
    }

    private static func snapshot(_ policy: Policy, keyPrefix: String) -> Snapshot {
        Snapshot(policy: policy, evaluator: Evaluator(policy: policy, keyPrefix: keyPrefix), toolListFilter: ToolListFilter(policy: policy))
    }
}
