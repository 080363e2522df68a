import ToolgateCore
import ToolgateTestSupport

extension FuzzTarget {
    /// Random arguments against a random rule, both chosen by the fuzzer's bytes through the property tests'
    /// generator: the rule must give the reference evaluator's answer, and the work it charges must stay within
    /// a constant times the size of what it reads (the arguments and the rule's operands).
    static let argumentRules = FuzzTarget(name: "argument-rules", summary: "argument rules against the reference, work linear") { input in
        var generator = ArgumentRuleGenerator(rng: FuzzInputGenerator(input))
        let arguments = generator.object(depth: 0)
        let path = generator.path()
        let (op, referenceOp) = generator.rule()
        let optional = generator.optional()
        let rule = ArgumentRule(path: path, op: op, optional: optional)
        let expected = ArgumentRuleReference.holds(
            referenceOp, path: path, optional: optional, ArgumentRuleReference.Value(arguments), hidden: generator.hidden)
        var holds = false
        let work = WorkMeter.measure { holds = rule.holds(for: arguments) }
        guard holds == expected else {
            violated("argument-rules", "\(path) \(op) optional \(optional) on \(JSONWriter.string(arguments)): \(holds), the reference says \(expected)")
        }
        let size = JSONWriter.bytes(arguments).count + operandBytes(op) + path.reduce(0) { $0 + $1.utf8.count }
        guard work <= workPerByte * size + 64 else {
            violated("argument-rules", "\(path) \(op) charged \(work) units for \(size) bytes of input")
        }
    }

    /// Generous for one pass plus a few re-reads (normalization, number readings); a quadratic pass over the
    /// generator's long strings exceeds it by far.
    static let workPerByte = 16

    private static func operandBytes(_ op: ArgumentRule.Operator) -> Int {
        switch op {
        case .eq(let v), .neq(let v), .contains(let v): JSONWriter.bytes(v).count
        case .in(let vs), .notIn(let vs): vs.reduce(0) { $0 + JSONWriter.bytes($1).count }
        case .lt(let n), .lte(let n), .gt(let n), .gte(let n): n.literal.utf8.count
        case .regex(let r): r.pattern.utf8.count
        default: 8
        }
    }
}
