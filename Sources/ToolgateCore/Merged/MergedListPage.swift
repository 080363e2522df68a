/// One page of a merged list: each server's page of the same list, in servers-file order, made one result with
/// toolgate's own cursor (DESIGN.md section 10). A server whose page failed is left out of this page and the next.
public struct MergedListPage: Sendable {
    public enum Outcome: Sendable {
        /// The server's `result` object (already filtered by its policy section).
        case page(JSONValue)
        case failed(String)
    }

    public struct LeftOut: Sendable, Equatable {
        public let server: String
        public let name: String
        public let why: String
    }

    /// A resource URI or template a server listed: the merged endpoint routes it there.
    public struct Claim: Sendable, Equatable {
        public let server: String
        public let uri: String
        public let isTemplate: Bool
    }

    /// The agent's `result`.
    public let result: JSONValue
    /// Items left out because their merged name would break the tool-name rules.
    public let leftOut: [LeftOut]
    /// Servers whose page could not be had, and why.
    public let failed: [(server: String, why: String)]
    public let claims: [Claim]

    public static func merge(_ kind: MergedListKind, pages: [(server: String, outcome: Outcome)], names: MergedNames) -> MergedListPage {
        var items: [JSONValue] = []
        var pending: [MergedCursor.Entry] = []
        var leftOut: [LeftOut] = []
        var failed: [(String, String)] = []
        var claims: [Claim] = []
        var results: [JSONValue] = []
        for (server, outcome) in pages {
            guard case .page(let result) = outcome else {
                if case .failed(let why) = outcome { failed.append((server, why)) }
                continue
            }
            results.append(result)
            for item in result[kind.itemsKey]?.arrayValue ?? [] {
                guard case .object(var object) = item else { continue }
                if kind.namesArePrefixed {
                    guard case .string(let name)? = object["name"] else { continue }
                    // `a` listing `b__x` would be `a__b__x`, which is server `a__b`'s `x`: left out, never misrouted.
                    guard let merged = names.exposed(server: server, name: name),
                        let back = names.route(merged), back.server == server, back.name == name
                    else {
                        leftOut.append(LeftOut(
                            server: server, name: name,
                            why: names.exposed(server: server, name: name) == nil
                                ? "\"\(server)\(names.separator)\(name.prefix(64))\" is not a valid tool name (1-128 of A-Z a-z 0-9 _ - .)"
                                : "\"\(server)\(names.separator)\(name.prefix(64))\" would name another server's tool"))
                        continue
                    }
                    object["name"] = .string(merged)
                } else if case .string(let uri)? = object[kind == .resources ? "uri" : "uriTemplate"] {
                    claims.append(Claim(server: server, uri: uri, isTemplate: kind == .resourceTemplates))
                }
                items.append(.object(object))
            }
            if case .string(let next)? = result["nextCursor"] { pending.append(.init(server: server, cursor: next)) }
        }
        var result: JSONObject = [kind.itemsKey: .array(items)]
        MergedResultFields.apply(from: results, to: &result)
        if !pending.isEmpty { result["nextCursor"] = .string(MergedCursor(pending: pending).encoded()) }
        return MergedListPage(result: .object(result), leftOut: leftOut, failed: failed, claims: claims)
    }
}
