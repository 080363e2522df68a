/// What decided a refusal, for the audit log (DESIGN.md section 8: `detail`). Never an argument's value: the audit
/// log records arguments only as a hash. The agent's denial text is built elsewhere and does not change with this.
public enum DecisionDetail: Sendable, Equatable {
    /// The policy hides the tool (`hidden` list, or a hiding pattern).
    case hidden
    /// No entry covers the tool and the policy's default is `deny`.
    case noEntry
    /// The entry says `action: deny`.
    case entryDenies
    /// The argument rule at `index` in `entry`'s `arguments` failed; `rule` is its text (`amount lte 500`).
    case argumentRule(entry: String, index: Int, rule: String)
    /// A limit's `cost: args.PATH` could not be charged (missing, not a non-negative integer, or above `max`).
    case cost(counter: String, path: String)

    /// `arguments[1]: amount lte 500`, `hidden`, `limit spend: cost args.amount`. An argument rule of the additive
    /// entry says so (`"*" arguments[0]: …`), since `rule` then names the tool's own entry.
    public func text(ruleOfCall: String?) -> String {
        switch self {
        case .hidden: "hidden"
        case .noEntry: "no entry (default deny)"
        case .entryDenies: "action deny"
        case .argumentRule(let entry, let index, let rule):
            (entry == ruleOfCall ? "" : "\(JSONWriter.string(.string(entry))) ") + "arguments[\(index)]: \(rule)"
        case .cost(let counter, let path): "limit \(counter): cost args.\(path)"
        }
    }
}

extension ArgumentRule {
    /// The rule as written, in one line: `amount lte 500`, `format in ["png","jpeg"]`, `name regex "^a"`.
    public var text: String {
        let p = pathText
        switch op {
        case .eq(let v): return "\(p) eq \(JSONWriter.string(v))"
        case .neq(let v): return "\(p) neq \(JSONWriter.string(v))"
        case .in(let vs): return "\(p) in \(JSONWriter.string(.array(vs)))"
        case .notIn(let vs): return "\(p) not_in \(JSONWriter.string(.array(vs)))"
        case .lt(let n): return "\(p) lt \(n)"
        case .lte(let n): return "\(p) lte \(n)"
        case .gt(let n): return "\(p) gt \(n)"
        case .gte(let n): return "\(p) gte \(n)"
        case .regex(let r): return "\(p) regex \(JSONWriter.string(.string(r.pattern)))"
        case .contains(let v): return "\(p) contains \(JSONWriter.string(v))"
        case .exists(let b): return "\(p) exists \(b)"
        case .maxLength(let n): return "\(p) max_length \(n)"
        }
    }
}
