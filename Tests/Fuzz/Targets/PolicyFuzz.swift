import ToolgateCore

extension FuzzTarget {
    static let policyJSON = FuzzTarget(name: "policy-json", summary: "the policy loader, JSON") { input in
        checkPolicy(Array(input), file: "policy.json")
    }

    static let policyYAML = FuzzTarget(name: "policy-yaml", summary: "the policy loader, YAML") { input in
        checkPolicy(Array(input), file: "policy.yaml")
    }

    /// A policy either loads or is refused with errors that each name the file; one that loads is evaluated for
    /// every tool it names, with and without arguments.
    private static func checkPolicy(_ bytes: [UInt8], file: String) {
        let policy: Policy
        do throws(PolicyValidationError) {
            policy = try Policy.parse(bytes, file: file)
        } catch {
            guard !error.errors.isEmpty else { violated(file, "refused without an error") }
            for problem in error.errors where !problem.description.hasPrefix(file) {
                violated(file, "an error does not start with the file name: \(problem.description)")
            }
            return
        }
        let evaluator = Evaluator(policy: policy)
        let identity = Identity(grant: "fuzz", session: "s", agent: "a")
        for name in policy.entries.prefix(8).map(\.key) + ["unlisted"] {
            _ = evaluator.isListed(name)
            for arguments: JSONValue in [[:], ["a": "x", "n": 5, "list": [1, "b"], "nested": ["k": true]]] {
                _ = evaluator.evaluate(ToolCall(name: name, arguments: arguments), identity: identity)
            }
        }
    }
}
