/// The policy held against the tools a live server lists (DESIGN.md section 2, `check --upstream`): a name with a
/// typo or an argument path that does not exist validates, yet the tool just disappears or every call is refused.
/// Pure: the tools come from wherever the caller fetched them.
public enum PolicyCoverage {
    public struct UpstreamTool: Sendable, Equatable {
        public let name: String
        /// The tool's `inputSchema`, as the server gave it.
        public let inputSchema: JSONValue?

        public init(name: String, inputSchema: JSONValue? = nil) {
            self.name = name
            self.inputSchema = inputSchema
        }
    }

    /// One warning per problem, each starting with the file and the policy path it concerns. `section`: `policy` is
    /// the file's `servers.NAME` section for server NAME, and paths say so.
    public static func warnings(policy: Policy, file: String, section: String? = nil, tools: [UpstreamTool]) -> [String] {
        var warnings: [String] = []
        let names = tools.map(\.name)
        let top = section.map { "\(file): servers.\($0)." } ?? "\(file): "
        for entry in policy.entries {
            let path = "\(top)tools.\(entry.key)"
            let matching = tools.filter { entry.pattern.matches($0.name) }
            if matching.isEmpty {
                if entry.pattern.isGlob {
                    warnings.append("\(path): matches none of the upstream's tools")
                } else {
                    let hint = NameSuggestion.closest(to: entry.key, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
                    warnings.append("\(path): the upstream has no tool \"\(entry.key)\"\(hint)")
                }
                continue
            }
            warnings += pathWarnings(entry, path: path, tools: matching)
        }
        if let wildcard = policy.wildcard {
            warnings += pathWarnings(wildcard, path: "\(top)tools.\"*\"", tools: tools.filter { !policy.isHidden($0.name) })
        }
        let uncovered = names.filter { name in !policy.isHidden(name) && policy.entry(for: name) == nil }
        if !uncovered.isEmpty {
            let list = uncovered.map { "\"\($0)\"" }.joined(separator: ", ")
            let file = section.map { "\(file): servers.\($0)" } ?? file
            switch policy.defaultAction {
            case .deny: warnings.append("\(file): no entry covers the upstream's tools \(list); default deny hides them")
            case .allow: warnings.append("\(file): no entry covers the upstream's tools \(list); default allow lets them through unchecked")
            }
        }
        return warnings
    }

    /// Argument and cost paths whose first step is not a property of every matching tool's input schema (when the
    /// schema lists its properties at all).
    private static func pathWarnings(_ entry: ToolEntry, path: String, tools: [UpstreamTool]) -> [String] {
        var warnings: [String] = []
        var paths: [(String, [String])] = entry.arguments.enumerated().map { ("\(path).arguments[\($0.offset)].path", $0.element.path) }
        for (i, limit) in entry.limits.enumerated() {
            if case .argument(let argumentPath) = limit.cost { paths.append(("\(path).limits[\(i)].cost", argumentPath)) }
        }
        for (location, argumentPath) in paths {
            guard let first = argumentPath.first else { continue }
            for tool in tools {
                guard let properties = tool.inputSchema?["properties"]?.objectValue else { continue }
                if properties[first] == nil {
                    let known = properties.keys.map { "\"\($0)\"" }.joined(separator: ", ")
                    warnings.append(
                        "\(location): \"\(first)\" is not an argument of \(tool.name) (its inputSchema has \(known.isEmpty ? "none" : known))")
                }
            }
        }
        for (i, rule) in entry.arguments.enumerated() where !rule.optional {
            // `exists` is about presence: it says itself what an absent path means.
            if case .exists = rule.op { continue }
            for tool in tools {
                guard let step = optionalStep(rule.path, in: tool.inputSchema) else { continue }
                let what = step == rule.pathText ? "\"\(step)\"" : "\"\(step)\" (on the way to \"\(rule.pathText)\")"
                warnings.append(
                    "\(path).arguments[\(i)].path: \(what) is not in \(tool.name)'s required arguments, so a call that leaves it out is denied; add \"optional\": true to judge it only when present")
            }
        }
        return warnings
    }

    /// The first step of `path` that the schema declares as a property but does not list as `required`, in the
    /// schema of the object holding it; nil when every step is required, or the schema does not say (no
    /// `properties` for that step: the path warning above covers a first step it lacks).
    static func optionalStep(_ path: [String], in schema: JSONValue?) -> String? {
        var current = schema
        for (depth, step) in path.enumerated() {
            guard let properties = current?["properties"]?.objectValue, let property = properties[step] else { return nil }
            let required = current?["required"]?.arrayValue ?? []
            if !required.contains(where: { $0.stringValue?.utf8.elementsEqual(step.utf8) == true }) { return path.prefix(depth + 1).joined(separator: ".") }
            current = property
        }
        return nil
    }
}
