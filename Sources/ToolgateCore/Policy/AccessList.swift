/// The policy's optional `resources` or `prompts` section (DESIGN.md section 4): which resource URIs (and URI
/// templates, by their template string) or prompt names pass. Hidden or denied beats allowed; anything unlisted
/// follows `default`.
public struct AccessList: Sendable {
    public let defaultAction: DefaultAction
    public let allow: [ToolPattern]
    public let deny: [ToolPattern]
    public let hide: [ToolPattern]

    public init(defaultAction: DefaultAction, allow: [String] = [], deny: [String] = [], hide: [String] = []) {
        self.defaultAction = defaultAction
        self.allow = allow.map(ToolPattern.init)
        self.deny = deny.map(ToolPattern.init)
        self.hide = hide.map(ToolPattern.init)
    }

    public func allows(_ name: String) -> Bool {
        if hide.contains(where: { $0.matches(name) }) || deny.contains(where: { $0.matches(name) }) { return false }
        if allow.contains(where: { $0.matches(name) }) { return true }
        return defaultAction == .allow
    }
}
