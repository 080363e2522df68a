/// The policy's optional `resources` or `prompts` section (DESIGN.md section 4): which resource URIs (and URI
/// templates, by their template string) or prompt names pass. Hidden or denied beats allowed; anything unlisted
/// follows `default`.
///
/// In the `resources` section a pattern may be an RFC 6570 template (`URITemplatePattern`): under `hide` and `deny`
/// it keeps out every URI it could produce, matched conservatively; under `allow` it lets in exactly the URIs it
/// can produce. Prompt names are plain globs.
public struct AccessList: Sendable {
    public let defaultAction: DefaultAction
    public let allow: [URITemplatePattern]
    public let deny: [URITemplatePattern]
    public let hide: [URITemplatePattern]
    /// Whether `{…}` in a pattern is a template expression (resources) or literal text (prompts).
    public let uriTemplates: Bool

    public init(
        defaultAction: DefaultAction, allow: [String] = [], deny: [String] = [], hide: [String] = [], uriTemplates: Bool = false
    ) {
        self.defaultAction = defaultAction
        self.uriTemplates = uriTemplates
        func patterns(_ texts: [String]) -> [URITemplatePattern] {
            texts.map { uriTemplates ? URITemplatePattern($0) : URITemplatePattern(glob: $0) }
        }
        self.allow = patterns(allow)
        self.deny = patterns(deny)
        self.hide = patterns(hide)
    }

    public func allows(_ name: String) -> Bool {
        if hide.contains(where: { $0.covers(name) }) || deny.contains(where: { $0.covers(name) }) { return false }
        if allow.contains(where: { $0.admits(name) }) { return true }
        return defaultAction == .allow
    }
}
