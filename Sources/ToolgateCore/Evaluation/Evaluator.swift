/// `(Policy, ToolCall, Identity) → Decision`. Pure: no I/O, no clock, no store.
public struct Evaluator: Sendable {
    public let policy: Policy
    public let keys: CounterKey

    public static let otherToolLabel = "_other"

    public init(policy: Policy, keyPrefix: String = "toolgate") {
        self.policy = policy
        self.keys = CounterKey(prefix: keyPrefix)
    }

    public func evaluate(_ call: ToolCall, identity: Identity) -> Decision {
        let name = call.name
        if policy.isHidden(name) {
            return Decision(tool: name, verdict: .unknownTool, rule: nil, metricTool: Self.otherToolLabel, detail: .hidden)
        }
        let entry = policy.entry(for: name)
        if entry == nil && policy.defaultAction == .deny {
            return Decision(tool: name, verdict: .unknownTool, rule: nil, metricTool: Self.otherToolLabel, detail: .noEntry)
        }
        let rule = entry?.key
        let label = entry?.key ?? Self.otherToolLabel
        func decision(_ verdict: Decision.Verdict, _ charges: [LimitCharge] = [], detail: DecisionDetail? = nil) -> Decision {
            Decision(tool: name, verdict: verdict, rule: rule, metricTool: label, charges: charges, detail: detail)
        }

        if let entry, entry.action == .deny {
            return decision(.denied(message: entry.reason ?? "tool \(name) is not allowed"), detail: .entryDenies)
        }
        for owner in [entry, policy.wildcard] {
            guard let owner else { continue }
            if let index = owner.arguments.firstIndex(where: { !$0.holds(for: call.arguments) }) {
                let failed = owner.arguments[index]
                return decision(
                    .invalidArguments(message: failed.failureMessage, undecided: failed.wasUndecided(for: call.arguments)),
                    detail: .argumentRule(entry: owner.key, index: index, rule: failed.text))
            }
        }

        var charges: [LimitCharge] = []
        charges.reserveCapacity((entry?.limits.count ?? 0) + (policy.wildcard?.limits.count ?? 0))
        for owner in [entry, policy.wildcard] {
            guard let owner else { continue }
            for limit in owner.limits {
                let cost: Int
                switch resolveCost(limit, arguments: call.arguments) {
                case .success(let c): cost = c
                case .failure(let error):
                    return decision(.invalidArguments(message: error.message), detail: error.detail)
                }
                let (key, applied) = keys.resolve(counter: limit.counter, scope: limit.scope, identity: identity)
                charges.append(
                    LimitCharge(
                        key: key, counter: limit.counter, rule: owner.key, scope: applied, window: limit.window,
                        max: limit.max, algorithm: limit.algorithm, cost: cost, shadow: limit.shadow))
            }
        }
        if let entry, entry.action == .approve {
            return decision(.approvalRequired(entry.approval ?? .default), charges)
        }
        return decision(.allowed, charges)
    }

    /// Whether `tools/list` shows the tool.
    public func isListed(_ tool: String) -> Bool { policy.isListed(tool) }

    private struct CostError: Error {
        let message: String
        let detail: DecisionDetail
    }

    private func resolveCost(_ limit: LimitRule, arguments: JSONValue) -> Result<Int, CostError> {
        switch limit.cost {
        case .constant(let c):
            return .success(c)
        case .argument(let path):
            let detail = DecisionDetail.cost(counter: limit.counter, path: path.joined(separator: "."))
            let text = "args." + path.joined(separator: ".")
            guard let value = ArgumentRule.resolve(path, in: arguments) else {
                return .failure(CostError(message: "argument \(path.joined(separator: ".")) is required: it is charged against \(limit.counter) (cost \(text))", detail: detail))
            }
            guard case .number(let n) = value, let c = n.int64Value, c >= 0 else {
                return .failure(CostError(message: "argument \(path.joined(separator: ".")) must be a non-negative integer: it is charged against \(limit.counter)", detail: detail))
            }
            guard c <= Int64(limit.max) else {
                return .failure(CostError(message: "argument \(path.joined(separator: ".")) is \(c), more than the limit \(limit.counter) allows at once (\(limit.max))", detail: detail))
            }
            return .success(Int(c))
        }
    }
}
