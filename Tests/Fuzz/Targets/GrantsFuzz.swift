import ToolgateCore

extension FuzzTarget {
    /// A grants file (the first byte picks JSON or YAML). One that loads must find the token behind every
    /// `tokenEnv` entry, and never a grant for a token nobody was given.
    static let grants = FuzzTarget(name: "grants", summary: "the grants file, JSON and YAML") { input in
        guard let format = input.first else { return }
        let file = format & 1 == 0 ? "grants.json" : "grants.yaml"
        let environment = ["FUZZ_TOKEN": "fuzz-token-0123456789", "EMPTY": ""]
        let table: GrantTable
        do throws(PolicyValidationError) {
            table = try GrantTable.parse(Array(input.dropFirst()), file: file, environment: environment)
        } catch {
            guard !error.errors.isEmpty else { violated("grants", "refused without an error") }
            return
        }
        let names = table.grants.map(\.name)
        guard Set(names).count == names.count else { violated("grants", "two grants share a name: \(names)") }
        if table.grants.contains(where: { $0.tokenVariable == "FUZZ_TOKEN" }), table.grant(forToken: "fuzz-token-0123456789") == nil {
            violated("grants", "the token of a tokenEnv grant is not recognised")
        }
        guard table.grant(forToken: "a token nobody was given") == nil else { violated("grants", "an unknown token found a grant") }
    }
}
