/// The four lists the merged endpoint builds from every server's (DESIGN.md section 10). Tools and prompts carry
/// their server in their names; resources and templates keep their URIs and are routed by who listed them.
public enum MergedListKind: Sendable, CaseIterable {
    case tools, prompts, resources, resourceTemplates

    public init?(method: String) {
        switch method {
        case "tools/list": self = .tools
        case "prompts/list": self = .prompts
        case "resources/list": self = .resources
        case "resources/templates/list": self = .resourceTemplates
        default: return nil
        }
    }

    public var method: String {
        switch self {
        case .tools: "tools/list"
        case .prompts: "prompts/list"
        case .resources: "resources/list"
        case .resourceTemplates: "resources/templates/list"
        }
    }

    /// The result's array.
    public var itemsKey: String {
        switch self {
        case .tools: "tools"
        case .prompts: "prompts"
        case .resources: "resources"
        case .resourceTemplates: "resourceTemplates"
        }
    }

    /// The capability a server must announce for its list to be asked for.
    public var capability: String {
        switch self {
        case .tools: "tools"
        case .prompts: "prompts"
        case .resources, .resourceTemplates: "resources"
        }
    }

    var namesArePrefixed: Bool { self == .tools || self == .prompts }
}
