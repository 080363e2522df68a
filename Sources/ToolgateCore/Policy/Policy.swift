/// A checked, immutable policy with fast lookup. Build one with `Policy.parse(_:file:)`.
public struct Policy: Sendable {
    public let defaultAction: DefaultAction
    public let description: String?
    public let hide: [ToolPattern]
    /// Every entry except `"*"`, in document order.
    public let entries: [ToolEntry]
    /// The additive `"*"` entry: its arguments and limits apply to every call that is otherwise allowed.
    public let wildcard: ToolEntry?
    /// Hex SHA-256 of the policy file's bytes.
    public let sha256: String
    /// The optional `resources` and `prompts` sections; nil: they pass through untouched.
    public let resources: AccessList?
    public let prompts: AccessList?
    /// `servers.NAME` sections (DESIGN.md section 10), each a whole policy for that server; a server without one
    /// gets the top. Sections have none of their own.
    public private(set) var sections: [String: Policy] = [:]

    /// Tool names compare by their scalars (`ExactKey`): a name from outside is hashed in linear time, and
    /// KELVIN SIGN is not `K`.
    private let exactIndex: [ExactKey: Int]
    /// Indexes into `entries` of the globs, most specific first.
    private let globOrder: [Int]

    public static let wildcardKey = "*"

    public init(
        defaultAction: DefaultAction, description: String? = nil, hide: [String] = [], entries: [ToolEntry],
        wildcard: ToolEntry? = nil, sha256: String = "", resources: AccessList? = nil, prompts: AccessList? = nil
    ) {
        self.resources = resources
        self.prompts = prompts
        self.defaultAction = defaultAction
        self.description = description
        self.hide = hide.map(ToolPattern.init)
        self.entries = entries
        self.wildcard = wildcard
        self.sha256 = sha256
        var exact: [ExactKey: Int] = [:]
        var globs: [Int] = []
        for (i, entry) in entries.enumerated() {
            if entry.pattern.isGlob { globs.append(i) } else { exact[ExactKey(entry.key)] = i }
        }
        self.exactIndex = exact
        self.globOrder = globs.sorted { ToolPattern.precedes(entries[$0].pattern, entries[$1].pattern) }
    }

    /// The rules for one server: its section, else the top. Nil (a single unnamed upstream): the top.
    public func forServer(_ name: String?) -> Policy {
        guard let name, let section = sections[name] else { return self }
        return section
    }

    func with(sections: [String: Policy]) -> Policy {
        var copy = self
        copy.sections = sections
        return copy
    }

    /// The entry that governs `tool`: the exact name, else the most specific glob. Never the `"*"` entry.
    public func entry(for tool: String) -> ToolEntry? {
        if let i = exactIndex[ExactKey(tool)] { return entries[i] }
        for i in globOrder where entries[i].pattern.matches(tool) { return entries[i] }
        return nil
    }

    public func isHidden(_ tool: String) -> Bool {
        hide.contains { $0.matches(tool) }
    }

    /// Whether `tools/list` may show `tool`: not hidden, and let in by an entry or by `default: allow`.
    /// A tool under `action: deny` stays listed, so the agent can learn why it is refused.
    public func isListed(_ tool: String) -> Bool {
        if isHidden(tool) { return false }
        return entry(for: tool) != nil || defaultAction == .allow
    }
}
