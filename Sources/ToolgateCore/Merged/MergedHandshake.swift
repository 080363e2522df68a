/// What the merged endpoint says of itself, made from what each server said (DESIGN.md section 10): the union of
/// their capabilities, instructions that name each server, and a protocol revision every server speaks.
public enum MergedHandshake {
    /// One server's `initialize` or `server/discover` result.
    public struct Answer: Sendable {
        public let server: String
        public let result: JSONValue

        public init(server: String, result: JSONValue) {
            self.server = server
            self.result = result
        }
    }

    /// The `initialize` result: the oldest revision any server answered (the one they all speak: servers answer the
    /// client's revision or an older one they support).
    public static func initializeResult(_ answers: [Answer], serverInfo: JSONValue, separator: String) -> JSONValue {
        var result: JSONObject = [:]
        let versions = answers.compactMap { $0.result["protocolVersion"]?.stringValue }
        if let oldest = versions.min(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            result["protocolVersion"] = .string(oldest)
        }
        result["capabilities"] = capabilities(answers)
        result["serverInfo"] = serverInfo
        result["instructions"] = .string(instructions(answers, separator: separator))
        return .object(result)
    }

    /// The `server/discover` result (revision 2026-07-28): the revisions every server supports.
    public static func discoverResult(_ answers: [Answer], serverInfo: JSONValue, separator: String) -> JSONValue {
        var result: JSONObject = [:]
        let lists = answers.map { ($0.result["supportedVersions"]?.arrayValue ?? []).compactMap(\.stringValue) }
        if var common = lists.first {
            for list in lists.dropFirst() { common = common.filter { version in list.contains { $0.isExactly(version) } } }
            result["supportedVersions"] = .array(common.map(JSONValue.string))
        }
        result["capabilities"] = capabilities(answers)
        result["serverInfo"] = serverInfo
        result["instructions"] = .string(instructions(answers, separator: separator))
        MergedResultFields.apply(from: answers.map(\.result), to: &result)
        return .object(result)
    }

    /// Every capability any server has; a flag (`listChanged`, `subscribe`) is on when any server's is, a list holds
    /// every server's entries.
    public static func capabilities(_ answers: [Answer]) -> JSONValue {
        answers.reduce(JSONValue.object([:])) { union($0, $1.result["capabilities"] ?? .object([:])) }
    }

    static func union(_ a: JSONValue, _ b: JSONValue) -> JSONValue {
        switch (a, b) {
        case (.object(var left), .object(let right)):
            for member in right.members { left[member.key] = left[member.key].map { union($0, member.value) } ?? member.value }
            return .object(left)
        case (.bool(let left), .bool(let right)): return .bool(left || right)
        case (.array(let left), .array(let right)): return .array(left + right.filter { !left.contains($0) })
        default: return a
        }
    }

    /// Names the scheme, then each server's own instructions under its name, so the agent reads them in context.
    public static func instructions(_ answers: [Answer], separator: String) -> String {
        var text = "This MCP server is toolgate merging \(answers.count) servers: "
            + answers.map(\.server).joined(separator: ", ")
            + ". Tool and prompt names are SERVER\(separator)NAME; resources keep their own URIs."
        for answer in answers {
            guard case .string(let own)? = answer.result["instructions"], !own.isEmpty else { continue }
            text += "\n\n[\(answer.server)]\n" + own
        }
        return text
    }
}
