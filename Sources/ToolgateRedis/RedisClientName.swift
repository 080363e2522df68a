/// The name toolgate gives its Redis connections (`CLIENT SETNAME`), so an operator's `CLIENT LIST` shows which
/// sidecar holds which connection: `toolgate:<agent-id>`.
public enum RedisClientName {
    /// Redis refuses a name with a space, a newline or any byte outside `!`…`~`; such bytes become `_`. Kept short,
    /// since every `CLIENT LIST` line carries it.
    public static func forAgent(_ agentID: String) -> String {
        var bytes: [UInt8] = Array("toolgate:".utf8)
        for byte in agentID.utf8.prefix(maximumAgentBytes) {
            bytes.append((UInt8(ascii: "!")...UInt8(ascii: "~")).contains(byte) ? byte : UInt8(ascii: "_"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static let maximumAgentBytes = 64
}
