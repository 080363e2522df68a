/// What the policy says about one `tools/call`, before any limit is consumed.
public struct Decision: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// Unknown, hidden, or kept out by `default: deny`: answered as `-32602 Unknown tool`.
        case unknownTool
        /// `action: deny`: a visible refusal with the entry's reason.
        case denied(message: String)
        /// An argument rule failed, or a cost argument is unusable. `undecided`: a `regex` rule the engine could
        /// not decide within its bounds, failed closed.
        case invalidArguments(message: String, undecided: Bool = false)
        /// Allowed once a human approves; `limits` still apply afterwards.
        case approvalRequired(ApprovalSettings)
        /// Allowed, subject to `limits`.
        case allowed
    }

    public let tool: String
    public let verdict: Verdict
    /// The tool entry's key as written; `nil` when the call matched no entry (unknown, or `default: allow`).
    public let rule: String?
    /// Bounded label for metrics: the entry's key, or `_other`.
    public let metricTool: String
    /// Limits to check and consume in one atomic store operation. Empty unless the call may proceed.
    public let charges: [LimitCharge]
    /// What decided a refusal (the failing argument rule's index and text, hiding, …), for the audit log; nil
    /// when the verdict is not a refusal. Kept beside the verdict so the agent-facing text stays as it is.
    public let detail: DecisionDetail?

    public init(
        tool: String, verdict: Verdict, rule: String?, metricTool: String, charges: [LimitCharge] = [],
        detail: DecisionDetail? = nil
    ) {
        self.tool = tool
        self.verdict = verdict
        self.rule = rule
        self.metricTool = metricTool
        self.charges = charges
        self.detail = detail
    }
}

/// One limit a call charges, with its key resolved for the caller's identity.
public struct LimitCharge: Sendable, Equatable {
    public let key: String
    public let counter: String
    /// The entry that declared the limit (`"*"` for the additive entry).
    public let rule: String
    /// The scope that applied (a `session` limit without a session applies to the grant).
    public let scope: LimitScope
    public let window: Window
    public let max: Int
    public let algorithm: LimitAlgorithm
    public let cost: Int
    public let shadow: Bool

    public init(
        key: String, counter: String, rule: String, scope: LimitScope, window: Window, max: Int,
        algorithm: LimitAlgorithm, cost: Int, shadow: Bool = false
    ) {
        self.key = key
        self.counter = counter
        self.rule = rule
        self.scope = scope
        self.window = window
        self.max = max
        self.algorithm = algorithm
        self.cost = cost
        self.shadow = shadow
    }

    /// The same charge as a shadow one: consumed when it passes, never blocking (`--shadow`).
    public var asShadow: LimitCharge {
        LimitCharge(key: key, counter: counter, rule: rule, scope: scope, window: window, max: max, algorithm: algorithm, cost: cost, shadow: true)
    }
}
