/// Removes from a `tools/list` result the tools the policy keeps out (hidden, or not let in by
/// `default: deny`). A tool under `action: deny` stays: it explains itself when called.
public struct ToolListFilter: Sendable {
    public let isListed: @Sendable (String) -> Bool

    public init(isListed: @escaping @Sendable (String) -> Bool) { self.isListed = isListed }

    public init(policy: Policy) { self.init(isListed: { policy.isListed($0) }) }

    /// Filters one JSON-RPC response. Returns nil when nothing had to be removed, so the caller can forward
    /// the upstream's bytes untouched.
    public func filter(response: JSONValue) -> JSONValue? {
        guard case .object(var message) = response, case .object(var result) = message["result"],
            case .array(let tools) = result["tools"]
        else { return nil }
        let kept = tools.filter { tool in
            guard case .string(let name) = tool["name"] else { return false }
            return isListed(name)
        }
        guard kept.count != tools.count else { return nil }
        result["tools"] = .array(kept)
        message["result"] = .object(result)
        return .object(message)
    }

    /// Filters a response body (one message or a batch answer) whose request ids are `ids`.
    /// Returns nil when the body needs no change.
    public func filter(body: JSONValue, listRequestIDs ids: [JSONValue]) -> JSONValue? {
        func isListResponse(_ v: JSONValue) -> Bool { ids.contains(v["id"] ?? .null) }
        switch body {
        case .array(let elements):
            var changed = false
            let filtered = elements.map { element -> JSONValue in
                guard isListResponse(element), let f = filter(response: element) else { return element }
                changed = true
                return f
            }
            return changed ? .array(filtered) : nil
        default:
            return isListResponse(body) ? filter(response: body) : nil
        }
    }
}
