/// The policy's optional `resources` or `prompts` section (DESIGN.md section 4): which resource URIs (and URI
/// templates, by their template string) or prompt names pass. Hidden or denied beats allowed; anything unlisted
/// follows `default`.
///
/// In the `resources` section a pattern may be an RFC 6570 template (`URITemplatePattern`): under `hide` and `deny`
/// it keeps out every URI it could produce, matched conservatively; under `allow` it lets in exactly the URIs it
/// can produce. Prompt names are plain globs.
///
/// A URI is judged under every spelling a server may read it as (`URINormalForm`): kept out if any spelling is
/// hidden or denied, let in by `allow` only if both the URI as sent and its RFC 3986 normal form are allowed (so
/// `file:///srv/docs/../secret` is not in `file:///srv/docs/*`). Patterns are matched as written.
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
        let spellings = uriTemplates ? URINormalForm.spellings(of: name) : [name]
        for spelling in spellings {
            if hide.contains(where: { $0.covers(spelling) }) || deny.contains(where: { $0.covers(spelling) }) { return false }
        }
        let admitted = uriTemplates ? [name, URINormalForm.normalized(name)] : [name]
        if admitted.allSatisfy({ spelling in allow.contains(where: { $0.admits(spelling) }) }) { return true }
        return defaultAction == .allow
    }
}
