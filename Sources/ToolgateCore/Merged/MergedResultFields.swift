/// The fields of revision 2026-07-28 that every server's result carries and the merged result must too: `resultType`,
/// and the caching directives of list and discover results. The merged answer may be cached no longer than its
/// shortest-lived part, and never shared: it is filtered by the caller's grant.
enum MergedResultFields {
    static func apply(from results: [JSONValue], to merged: inout JSONObject) {
        if let type = results.lazy.compactMap({ $0["resultType"] }).first { merged["resultType"] = type }
        let ttls = results.compactMap { $0["ttlMs"]?.numberValue?.int64Value }
        if let shortest = ttls.min() { merged["ttlMs"] = .number(JSONNumber(shortest)) }
        if results.contains(where: { $0["cacheScope"] != nil }) { merged["cacheScope"] = "private" }
    }
}
