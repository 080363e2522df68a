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

    /// One warning per problem, each starting with the file and the policy path it concerns.
    public static func warnings(policy: Policy, file: String, tools: [UpstreamTool]) -> [String] {
        var warnings: [String] = []
        let names = tools.map(\.name)
        for entry in policy.entries {
            let path = "\(file): tools.\(entry.key)"
            let matching = tools.filter { entry.pattern.matches($0.name) }
            if matching.isEmpty {
                if entry.pattern.isGlob {
                    warnings.append("\(path): matches none of the upstream's tools")
                } else {
                    let hint = closest(to: entry.key, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
                    warnings.append("\(path): the upstream has no tool \"\(entry.key)\"\(hint)")
                }
                continue
            }
            warnings += pathWarnings(entry, path: path, tools: matching)
        }
        if let wildcard = policy.wildcard {
            warnings += pathWarnings(wildcard, path: "\(file): tools.\"*\"", tools: tools.filter { !policy.isHidden($0.name) })
        }
        let uncovered = names.filter { name in !policy.isHidden(name) && policy.entry(for: name) == nil }
        if !uncovered.isEmpty {
            let list = uncovered.map { "\"\($0)\"" }.joined(separator: ", ")
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
        return warnings
    }

    /// The name within edit distance 2 (or a third of its length), if one is that close.
    static func closest(to name: String, among names: [String]) -> String? {
        let target = Array(name.unicodeScalars)
        guard target.count <= 256 else { return nil }
        var best: (String, Int)?
        for candidate in names {
            let other = Array(candidate.unicodeScalars)
            guard other.count <= 256 else { continue }
            let distance = editDistance(target, other)
            if distance <= max(2, target.count / 3), distance < (best?.1 ?? .max) { best = (candidate, distance) }
        }
        return best?.0
    }

    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
