import ToolgateCore

extension FuzzTarget {
    /// `Mcp-Name`: any header value decodes or is refused without a crash, and the base64 form of any UTF-8
    /// name (padded or not, standard or URL-safe alphabet) decodes to exactly that name.
    static let mcpName = FuzzTarget(name: "mcp-name", summary: "Mcp-Name header decoding") { input in
        let header = String(decoding: input, as: UTF8.self)
        _ = MCPHeaderCheck.decodeName(header)
        guard let name = String(validating: Array(input), as: UTF8.self) else { return }
        for (alphabet, padded) in [(ReferenceBase64.standard, true), (ReferenceBase64.standard, false), (ReferenceBase64.urlSafe, false)] {
            let encoded = "=?base64?" + ReferenceBase64.encode(Array(name.utf8), alphabet: alphabet, padded: padded) + "?="
            guard let decoded = MCPHeaderCheck.decodeName(encoded) else { violated("mcp-name", "\(encoded) was refused") }
            guard decoded.utf8.elementsEqual(name.utf8) else { violated("mcp-name", "\(encoded) decoded to something else") }
        }
    }
}

/// RFC 4648 base64, written plainly here to check the decoder against.
enum ReferenceBase64 {
    static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let urlSafe = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8], alphabet: [UInt8], padded: Bool) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let chunk = Array(bytes[i..<min(i + 3, bytes.count)])
            let n = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            for k in 0..<(chunk.count + 1) { out.append(alphabet[Int(n >> (18 - 6 * UInt32(k)) & 63)]) }
            if padded { out += Array(repeating: UInt8(ascii: "="), count: 3 - chunk.count) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
