import Synchronization
import ToolgateCore

/// The policy and the grants in force. A reload swaps both together, whole; a request keeps the snapshot it
/// started with.
public final class PolicyState: Sendable {
    public struct Snapshot: Sendable {
        public let policy: Policy
        public let evaluator: Evaluator
        public let toolListFilter: ToolListFilter
        /// Nil: no grants file, every caller is grant `default`.
        public let grants: GrantTable?
    }

    private let current: Mutex<Snapshot>
    public let keyPrefix: String

    public init(policy: Policy, keyPrefix: String, grants: GrantTable? = nil) {
        self.keyPrefix = keyPrefix
        current = Mutex(Self.snapshot(policy, keyPrefix: keyPrefix, grants: grants))
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Replaces the policy and keeps the grants.
    public func replace(with policy: Policy) {
        let grants = snapshot.grants
        replace(with: policy, grants: grants)
    }

    public func replace(with policy: Policy, grants: GrantTable?) {
        let next = Self.snapshot(policy, keyPrefix: keyPrefix, grants: grants)
        current.withLock { $0 = next }
    }

    private static func snapshot(_ policy: Policy, keyPrefix: String, grants: GrantTable?) -> Snapshot {
        Snapshot(
            policy: policy, evaluator: Evaluator(policy: policy, keyPrefix: keyPrefix), toolListFilter: ToolListFilter(policy: policy),
            grants: grants)
    }
}
