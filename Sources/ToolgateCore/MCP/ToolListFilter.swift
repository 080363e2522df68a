/// Removes from `tools/list` results the tools the policy keeps out (hidden, or not let in by
/// `default: deny`). A tool under `action: deny` stays: it explains itself when called.
///
/// It fails closed: every message whose `result.tools` is an array is filtered, whatever its id, so an
/// answer that arrives under another id, on the GET stream, or inside a batch is caught all the same.
public struct ToolListFilter: Sendable {
    public let isListed: @Sendable (String) -> Bool

    public init(isListed: @escaping @Sendable (String) -> Bool) { self.isListed = isListed }

    public init(policy: Policy) { self.init(isListed: { policy.isListed($0) }) }

    /// Filters one JSON-RPC message. Returns nil when nothing had to be removed, so the caller can forward
    /// the upstream's bytes untouched.
    public func filter(message: JSONValue) -> JSONValue? {
        guard case .object(var object) = message, case .object(var result) = object["result"],
            case .array(let tools) = result["tools"]
        else { return nil }
        // A tool without a string name cannot be checked, so it does not pass.
        let kept = tools.filter { tool in
            guard case .string(let name) = tool["name"] else { return false }
            return isListed(name)
        }
        guard kept.count != tools.count else { return nil }
        result["tools"] = .array(kept)
        object["result"] = .object(result)
        return .object(object)
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
