/// The per-request era repeats the method and tool name in headers (`Mcp-Method`, `Mcp-Name`) so
/// intermediaries can route without reading the body. toolgate enforces from the body, and refuses a
/// request whose headers say something else, or in that era leave out, because a proxy further along
/// that routes by header could otherwise be fooled.
public enum MCPHeaderCheck {
    /// Nil when consistent; otherwise the -32020 failure to answer with HTTP 400.
    public static func mismatch(
        methodHeader: String?, nameHeader: String?, message: JSONRPCMessage, era: ProtocolEra = .handshake
    ) -> JSONRPCFailure? {
        guard let bodyMethod = message.method else { return nil }
        if era == .perRequest {
            if methodHeader == nil {
                return JSONRPCFailure(.headerMismatch, "Mcp-Method header is required in protocol revision 2026-07-28 (body method \"\(bodyMethod)\")")
            }
            if message.known == .toolsCall, nameHeader == nil {
                return JSONRPCFailure(.headerMismatch, "Mcp-Name header is required on tools/call in protocol revision 2026-07-28")
            }
        }
        if let methodHeader, !methodHeader.trimmingWhitespace.isExactly(bodyMethod) {
            return JSONRPCFailure(
                .headerMismatch, "Mcp-Method header \"\(methodHeader)\" does not match the body's method \"\(bodyMethod)\"")
        }
        guard message.known == .toolsCall, let nameHeader else { return nil }
        guard let name = decodeName(nameHeader) else {
            return JSONRPCFailure(.headerMismatch, "Mcp-Name header is not valid: \(nameHeader)")
        }
        guard case .object(let params) = message.params ?? .null, case .string(let bodyName) = params["name"] else {
            return nil  // the body's own problem is reported as -32602 when it is enforced
        }
        if !name.isExactly(bodyName) {
            return JSONRPCFailure(
                .headerMismatch, "Mcp-Name header \"\(name)\" does not match the body's tool name \"\(bodyName)\"")
        }
        return nil
    }

    /// `Mcp-Name` may carry a name that is not a valid header value as `=?base64?<base64 UTF-8>?=`.
    public static func decodeName(_ header: String) -> String? {
        let value = header.trimmingWhitespace
        let prefix = "=?base64?"
        let suffix = "?="
        guard value.hasPrefix(prefix), value.hasSuffix(suffix), value.count >= prefix.count + suffix.count else {
            return value
        }
        let encoded = value.dropFirst(prefix.count).dropLast(suffix.count)
        guard let bytes = Base64.decode(encoded) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
