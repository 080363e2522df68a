/// A refused `tools/call` other than an unknown tool, as DESIGN.md section 5 defines it: a normal
/// `CallToolResult` with `isError` and `_meta["toolgate/denial"]`, so the agent can read why.
public struct ToolCallDenial: Sendable, Equatable {
    public enum Reason: String, Sendable, CaseIterable {
        case denied
        case invalidArguments = "invalid_arguments"
        case rateLimited = "rate_limited"
        case approvalRequired = "approval_required"
        case approvalDenied = "approval_denied"
        case storeUnavailable = "store_unavailable"
    }

    public struct LimitDetails: Sendable, Equatable {
        public let counter: String
        public let limit: Int
        public let scope: LimitScope
        public let window: Window
        public let retryAfterSeconds: Int
    }

    public let reason: Reason
    /// The tool entry's key as written (`"*"` for the additive entry's arguments and limits).
    public let rule: String
    /// The human part of the text the agent reads after "Denied by policy: ".
    public let message: String
    public let limit: LimitDetails?
    public let approvalID: String?
    /// When to try again, for a denial that is not a limit's (`store_unavailable`: DESIGN.md section 7).
    public let retryAfter: Int?

    public init(
        reason: Reason, rule: String, message: String, limit: LimitDetails? = nil, approvalID: String? = nil,
        retryAfterSeconds: Int? = nil
    ) {
        self.reason = reason
        self.rule = rule
        self.message = message
        self.limit = limit
        self.approvalID = approvalID
        self.retryAfter = retryAfterSeconds.map { Swift.max(1, $0) }
    }

    /// `Retry-After` for the HTTP response, and `retryAfterSeconds` in the denial, when the denial has one.
    public var retryAfterSeconds: Int? { limit?.retryAfterSeconds ?? retryAfter }

    /// The denial for a call whose store outcome was not admitted: the failing enforced limit with the
    /// largest retry-after.
    public static func rateLimited(charges: [LimitCharge], outcome: LimitOutcome) -> ToolCallDenial? {
        var worst: (charge: LimitCharge, retry: Int64)?
        for (charge, result) in zip(charges, outcome.results) where !result.passed && !charge.shadow {
            if worst == nil || result.retryAfterMicros > worst!.retry { worst = (charge, result.retryAfterMicros) }
        }
        guard let (charge, retryMicros) = worst else { return nil }
        let seconds = Swift.max(1, Int((retryMicros + 999_999) / 1_000_000))
        let scopeNote = charge.scope.rawValue
        return ToolCallDenial(
            reason: .rateLimited, rule: charge.rule,
            message: "rate limit \(charge.counter) reached (\(charge.max) per \(charge.window.text), scope \(scopeNote)); retry after \(seconds) s",
            limit: LimitDetails(
                counter: charge.counter, limit: charge.max, scope: charge.scope, window: charge.window,
                retryAfterSeconds: seconds))
    }

    /// The `CallToolResult`. The per-request era requires `resultType`, or its clients reject the result.
    /// `server`: the named server the call was for (DESIGN.md section 10); nil for the one unnamed upstream.
    public func result(era: ProtocolEra, server: String? = nil) -> JSONValue {
        var denial = JSONObject([
            .init(key: "reason", value: .string(reason.rawValue)),
            .init(key: "rule", value: .string(rule)),
        ])
        if let limit {
            denial["counter"] = .string(limit.counter)
            denial["limit"] = .number(JSONNumber(limit.limit))
            denial["scope"] = .string(limit.scope.rawValue)
            denial["window"] = .string(limit.window.text)
            denial["windowSeconds"] = .number(JSONNumber(limit.window.seconds))
            denial["retryAfterSeconds"] = .number(JSONNumber(limit.retryAfterSeconds))
        } else if let retryAfter {
            denial["retryAfterSeconds"] = .number(JSONNumber(retryAfter))
        }
        if let approvalID { denial["approvalId"] = .string(approvalID) }
        if let server { denial["server"] = .string(server) }
        var result = JSONObject([
            .init(key: "content", value: [["type": "text", "text": .string("Denied by policy: " + message)]]),
            .init(key: "isError", value: true),
            .init(key: "_meta", value: ["toolgate/denial": .object(denial)]),
        ])
        if era == .perRequest { result["resultType"] = "complete" }
        return .object(result)
    }

    /// The error for a tool the agent may not know exists.
    public static func unknownTool(id: JSONValue, name: String) -> JSONValue {
        JSONRPCResponse.error(id: id, code: .invalidParams, message: "Unknown tool: \(name)")
    }
}
