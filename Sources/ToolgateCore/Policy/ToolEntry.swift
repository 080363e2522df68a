public enum ToolAction: String, Sendable {
    case allow
    /// Visible in `tools/list`, refused with the entry's `reason`.
    case deny
    /// Needs a human's approval before it is forwarded.
    case approve
}

public enum DefaultAction: String, Sendable {
    case allow
    case deny
}

public struct ApprovalSettings: Sendable, Equatable {
    /// How long a call waits for a decision before answering `approval_required`.
    public let waitSeconds: Int
    /// How long a pending or granted approval lives.
    public let ttlSeconds: Int
    /// Requests for approval one grant may have open at once: an agent cannot bury the approver (or the store).
    public let maxPending: Int
    /// The largest arguments (canonical JSON) a human is asked to review; larger calls are `invalid_arguments`.
    public let maxArgumentBytes: Int

    public static let `default` = ApprovalSettings(waitSeconds: 30, ttlSeconds: 3_600)

    public init(waitSeconds: Int, ttlSeconds: Int, maxPending: Int = 10, maxArgumentBytes: Int = 64 << 10) {
        self.waitSeconds = waitSeconds
        self.ttlSeconds = ttlSeconds
        self.maxPending = maxPending
        self.maxArgumentBytes = maxArgumentBytes
    }
}

/// One entry of `tools`, by exact name or glob. A class: it is shared, never copied, on the decision path.
public final class ToolEntry: Sendable {
    /// The key as written in the policy; denials report it as `rule`.
    public let key: String
    public let pattern: ToolPattern
    public let action: ToolAction
    public let reason: String?
    public let arguments: [ArgumentRule]
    public let limits: [LimitRule]
    /// Set when `action` is `approve`.
    public let approval: ApprovalSettings?
    /// Hex SHA-256 of the entry as written (key and canonical value): what a remembered decision about a call is
    /// bound to, so a reload that changes this entry voids it and an unrelated edit does not.
    public let digest: String

    public init(
        key: String, action: ToolAction = .allow, reason: String? = nil, arguments: [ArgumentRule] = [],
        limits: [LimitRule] = [], approval: ApprovalSettings? = nil, digest: String = ""
    ) {
        self.digest = digest
        self.key = key
        self.pattern = ToolPattern(key)
        self.action = action
        self.reason = reason
        self.arguments = arguments
        self.limits = limits
        self.approval = approval
    }
}
