import Crypto

extension ToolEntry {
    /// SHA-256 over the key and the entry's canonical JSON, each length-prefixed so no two entries share a text.
    static func digestOfEntry(key: String, value: JSONValue) -> String {
        var text: [UInt8] = []
        for part in [Array(key.utf8), CanonicalJSON.bytes(value)] {
            text += Array(String(part.count).utf8) + [UInt8(ascii: ":")] + part
        }
        return SHA256.hash(data: text).hexString
    }
}

extension Policy {
    /// What decides a call to `tool`: the entry that governs it (or the default that lets it in) and the `"*"` entry.
    /// Equal across two policies exactly when neither changed, so what was decided under one (a charged first round,
    /// an approval) still holds under the other. Off the hot path: computed only for multi-round calls.
    public func decidingDigest(forTool tool: String) -> String {
        let governing = entry(for: tool).map { "entry:" + $0.digest } ?? "default:" + defaultAction.rawValue
        var text: [UInt8] = []
        for part in [governing, "wildcard:" + (wildcard?.digest ?? "")] {
            text += Array(String(part.utf8.count).utf8) + [UInt8(ascii: ":")] + Array(part.utf8)
        }
        return SHA256.hash(data: text).hexString
    }
}
