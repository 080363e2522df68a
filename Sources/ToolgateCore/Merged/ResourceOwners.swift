/// Which server a resource URI belongs to at the merged endpoint (DESIGN.md section 10): the server that listed it,
/// else the first server (in file order) whose listed template can produce it (RFC 6570 expansion, as the policy's
/// `allow` reads templates: linear in the URI, never backtracking). A URI two servers list goes to the one
/// first in file order, and the conflict is reported once.
public struct ResourceOwners: Sendable {
    /// Servers-file order: earlier wins a conflict.
    private let order: [String: Int]
    private var exact: [String: String] = [:]
    private var templates: [(template: URITemplatePattern, text: String, server: String)] = []

    public init(servers: [String]) {
        order = Dictionary(servers.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Records what a list page showed; returns a description of each new conflict (for a warning).
    public mutating func record(_ claims: [MergedListPage.Claim]) -> [String] {
        var conflicts: [String] = []
        for claim in claims where order[claim.server] != nil {
            if claim.isTemplate {
                guard !templates.contains(where: { $0.text == claim.uri && $0.server == claim.server }) else { continue }
                templates.append((URITemplatePattern(claim.uri), claim.uri, claim.server))
                templates.sort { order[$0.server]! < order[$1.server]! }
                continue
            }
            guard let holder = exact[claim.uri] else {
                exact[claim.uri] = claim.server
                continue
            }
            guard holder != claim.server else { continue }
            let first = order[holder]! <= order[claim.server]! ? holder : claim.server
            conflicts.append(
                "resource \"\(claim.uri.prefix(200))\" is listed by \"\(holder)\" and \"\(claim.server)\"; it goes to \"\(first)\"")
            exact[claim.uri] = first
        }
        return conflicts
    }

    public func owner(of uri: String) -> String? {
        if let server = exact[uri] { return server }
        // Matching is linear in the URI times each template's size: an agent's megabyte URI is not held against them.
        guard uri.utf8.count <= Self.longestMatchedURI else { return nil }
        return templates.first { $0.template.admits(uri) }?.server
    }

    static let longestMatchedURI = 8 << 10
}
