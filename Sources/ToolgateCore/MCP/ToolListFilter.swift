/// Removes from `tools/list` results the tools the policy keeps out (hidden, or not let in by
/// `default: deny`). A tool under `action: deny` stays: it explains itself when called. With the policy's
/// `resources` and `prompts` sections, resources (by `uri`), resource templates (by `uriTemplate`) and prompts (by
/// `name`) they keep out leave their lists too.
///
/// It fails closed: every message whose `result.tools` (or `resources`, `resourceTemplates`, `prompts`) is an
/// array is filtered, whatever its id, so an answer that arrives under another id, on the GET stream, or inside a
/// batch is caught all the same; an item without a string name or URI does not pass.
public struct ToolListFilter: Sendable {
    public let isListed: @Sendable (String) -> Bool
    public let resources: AccessList?
    public let prompts: AccessList?

    public init(isListed: @escaping @Sendable (String) -> Bool, resources: AccessList? = nil, prompts: AccessList? = nil) {
        self.isListed = isListed
        self.resources = resources
        self.prompts = prompts
    }

    public init(policy: Policy) { self.init(isListed: { policy.isListed($0) }, resources: policy.resources, prompts: policy.prompts) }

    /// Filters one JSON-RPC message. Returns nil when nothing had to be removed, so the caller can forward
    /// the upstream's bytes untouched.
    public func filter(message: JSONValue) -> JSONValue? {
        guard case .object(var object) = message, case .object(var result) = object["result"] else { return nil }
        var changed = false
        func keep(_ member: String, by field: String, _ allows: (String) -> Bool) {
            guard case .array(let items) = result[member] else { return }
            let kept = items.filter { item in
                guard case .string(let name) = item[field] else { return false }
                return allows(name)
            }
            guard kept.count != items.count else { return }
            result[member] = .array(kept)
            changed = true
        }
        keep("tools", by: "name", isListed)
        if let resources {
            keep("resources", by: "uri", resources.allows)
            keep("resourceTemplates", by: "uriTemplate", resources.allows)
        }
        if let prompts { keep("prompts", by: "name", prompts.allows) }
        guard changed else { return nil }
        object["result"] = .object(result)
        return .object(object)
    }

    /// Whether raw JSON bytes may hold a list this filter changes: `mayContainToolList`, or, with a `resources` or
    /// `prompts` section, one of those lists' keys.
    public func mayContainList(_ bytes: some Collection<UInt8>) -> Bool {
        if Self.mayContainToolList(bytes) { return true }
        if resources != nil, bytes.containsBytes(of: "\"resources\"") || bytes.containsBytes(of: "\"resourceTemplates\"") {
            return true
        }
        if prompts != nil, bytes.containsBytes(of: "\"prompts\"") { return true }
        return false
    }

    /// Filters a body: one message or an array of them. Returns nil when the body needs no change.
    public func filter(body: JSONValue) -> JSONValue? {
        guard case .array(let elements) = body else { return filter(message: body) }
        var changed = false
        let filtered = elements.map { element -> JSONValue in
            guard let f = filter(message: element) else { return element }
            changed = true
            return f
        }
        return changed ? .array(filtered) : nil
    }

    /// Whether raw JSON bytes can hold a `tools` member at all: the key spelled out, or any `\u` escape (which
    /// could spell it). Most answers have neither, and are relayed without being parsed.
    public static func mayContainToolList(_ bytes: some Collection<UInt8>) -> Bool {
        let pattern: [UInt8] = Array("\"tools\"".utf8)
        var matched = 0
        var previous: UInt8 = 0
        for byte in bytes {
            if previous == UInt8(ascii: "\\"), byte == UInt8(ascii: "u") { return true }
            previous = previous == UInt8(ascii: "\\") && byte == UInt8(ascii: "\\") ? 0 : byte
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count { return true }
            } else {
                matched = byte == pattern[0] ? 1 : 0
            }
        }
        return false
    }
}
