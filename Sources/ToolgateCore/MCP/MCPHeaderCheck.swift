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

/// Standard base64 (RFC 4648), padding optional. Foundation's decoder is not available in the pure core.
enum Base64 {
    static func decode(_ text: Substring) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var padding = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"), UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "/"), UInt8(ascii: "_"): values.append(63)
            case UInt8(ascii: "="): padding += 1
            default: return nil
            }
            if padding > 0, byte != UInt8(ascii: "=") { return nil }
        }
        guard padding <= 2, values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var i = 0
        while i + 4 <= values.count {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6 | UInt32(values[i + 3])
            out += [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            i += 4
        }
        let rest = values.count - i
        if rest == 2 {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12
            out.append(UInt8(n >> 16 & 0xFF))
        } else if rest == 3 {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6
            out += [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF)]
        }
        return out
    }
}
