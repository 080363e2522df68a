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

    /// A reload that was refused: the file that failed, its errors, when (microseconds since the epoch).
    public struct RefusedReload: Sendable, Equatable {
        public let path: String
        public let error: String
        public let timeMicros: Int64
    }

    /// The top's snapshot, and one per `servers.NAME` section, built together at each swap.
    private struct InForce: Sendable {
        let top: Snapshot
        let sections: [String: Snapshot]
    }

    private let current: Mutex<InForce>
    private let refused = Mutex<RefusedReload?>(nil)
    public let keyPrefix: String

    /// The last refused reload, shown by `/readyz` until a reload succeeds: the policy in force is then not the
    /// file on disk, which an operator must be able to see without reading logs.
    public var lastReloadError: RefusedReload? { refused.withLock { $0 } }

    public func reloadRefused(_ reload: RefusedReload) { refused.withLock { $0 = reload } }

    /// A reload found valid files that hold what is in force already: nothing to swap, but no error to show.
    public func reloadAccepted() { refused.withLock { $0 = nil } }

    public init(policy: Policy, keyPrefix: String, grants: GrantTable? = nil) {
        self.keyPrefix = keyPrefix
        current = Mutex(Self.inForce(policy, keyPrefix: keyPrefix, grants: grants))
    }

    /// The whole file's policy (its top), with the grants.
    public var snapshot: Snapshot { current.withLock { $0.top } }

    /// What decides for one server: its section of the policy, else the top. Nil: the single unnamed upstream.
    public func snapshot(forServer name: String?) -> Snapshot {
        current.withLock { inForce in
            guard let name, let section = inForce.sections[name] else { return inForce.top }
            return section
        }
    }

    /// Replaces the policy and keeps the grants.
    public func replace(with policy: Policy) {
        let grants = snapshot.grants
        replace(with: policy, grants: grants)
    }

    public func replace(with policy: Policy, grants: GrantTable?) {
        let next = Self.inForce(policy, keyPrefix: keyPrefix, grants: grants)
        current.withLock { $0 = next }
        refused.withLock { $0 = nil }
    }

    private static func inForce(_ policy: Policy, keyPrefix: String, grants: GrantTable?) -> InForce {
        InForce(
            top: snapshot(policy, keyPrefix: keyPrefix, grants: grants),
            sections: policy.sections.mapValues { snapshot($0, keyPrefix: keyPrefix, grants: grants) })
    }

    private static func snapshot(_ policy: Policy, keyPrefix: String, grants: GrantTable?) -> Snapshot {
        Snapshot(
            policy: policy, evaluator: Evaluator(policy: policy, keyPrefix: keyPrefix), toolListFilter: ToolListFilter(policy: policy),
            grants: grants)
    }
}
