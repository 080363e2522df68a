import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// Random arguments against random rules (`ArgumentRuleGenerator`): never a crash, and the same answer as the
/// small reference evaluator of `ArgumentRuleReference`, written from DESIGN.md section 4 alone. The fuzzer's
/// `argument-rules` target runs the same comparison on coverage-guided inputs.
@Suite struct ArgumentRulePropertyTests {
    typealias Gen = ArgumentRuleGenerator<SeededGenerator>
    typealias Reference = ArgumentRuleReference

    @Test(arguments: Array(1...40) as [UInt64])
    func rulesAgreeWithTheReference(seed: UInt64) {
        var gen = Gen(rng: SeededGenerator(seed: seed))
        for step in 0..<300 {
            let arguments = gen.object(depth: 0)
            let path = gen.path()
            let (op, refOp) = gen.rule()
            let optional = gen.optional()
            let rule = ArgumentRule(path: path, op: op, optional: optional)
            let expected = Reference.holds(refOp, path: path, optional: optional, Reference.Value(arguments), hidden: gen.hidden)
            #expect(
                rule.holds(for: arguments) == expected,
                "seed \(seed) step \(step): \(path) \(op) optional \(optional) on \(JSONWriter.string(arguments))")
        }
    }
}
