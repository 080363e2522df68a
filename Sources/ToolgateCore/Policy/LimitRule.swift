/// Whose calls a counter counts.
public enum LimitScope: String, Sendable, CaseIterable {
    /// The agent's credential.
    case grant
    /// One MCP session; falls back to the grant when a request has none.
    case session
    /// This host (`--agent-id`).
    case agent
    /// The whole fleet.
    case global
}

public enum LimitAlgorithm: String, Sendable, CaseIterable {
    /// Exact log: never more than `max` in any interval of length `window`.
    case sliding
    /// UTC-aligned windows with a counter: at most `max` per aligned window.
    case fixed
    /// GCRA with burst `max` and rate `max/window`, O(1) state.
    case tokenBucket = "token_bucket"
}

/// What one call charges against a counter.
public enum LimitCost: Sendable, Equatable {
    case constant(Int)
    /// A numeric argument at this dotted path (`args.tokens` → `["tokens"]`), for spend caps.
    case argument(path: [String])
}

/// One entry of a tool's `limits`, validated.
public struct LimitRule: Sendable {
    public let counter: String
    public let window: Window
    public let max: Int
    public let scope: LimitScope
    public let algorithm: LimitAlgorithm
    public let cost: LimitCost
    /// Evaluates and counts, never denies: for trying a limit out on live traffic.
    public let shadow: Bool

    public init(
        counter: String, window: Window, max: Int, scope: LimitScope = .grant,
        algorithm: LimitAlgorithm = .sliding, cost: LimitCost = .constant(1), shadow: Bool = false
    ) {
        self.counter = counter
        self.window = window
        self.max = max
        self.scope = scope
        self.algorithm = algorithm
        self.cost = cost
        self.shadow = shadow
    }
}
