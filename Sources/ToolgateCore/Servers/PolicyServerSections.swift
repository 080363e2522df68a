/// A policy held against a servers file (`toolgate check POLICY --servers FILE`): a `servers.NAME` section for a
/// server the file does not have is never used, so its rules silently guard nothing (a typo, or a server renamed in
/// one file and not the other).
public enum PolicyServerSections {
    /// One error per section naming no server of `servers`, with a did-you-mean.
    public static func errors(policy: Policy, policyFile: String, servers: ServersFile, serversFile: String) -> [PolicyError] {
        let names = servers.servers.map(\.name)
        let list = names.isEmpty ? "none" : names.joined(separator: ", ")
        return policy.sections.keys.sorted().compactMap { section -> PolicyError? in
            guard !names.contains(where: { $0.isExactly(section) }) else { return nil }
            // Worded as `serve --servers` words it when it refuses to start on the same policy.
            let hint = NameSuggestion.closest(to: section, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            return PolicyError(
                file: policyFile, path: PolicyPath.root.key("servers").key(section).description,
                message: "no server \"\(section)\" in \(serversFile)\(hint) (servers: \(list))")
        }
    }
}
