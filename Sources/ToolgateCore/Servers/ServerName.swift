/// A server's name in the servers file: it becomes a URL path segment (`/mcp/NAME`), a metric label and a prefix of
/// merged tool names, so it is short, lower-case and needs no escaping anywhere.
public enum ServerName {
    public static let maximumLength = 32

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= maximumLength, isLowerOrDigit(first) else { return false }
        return bytes.allSatisfy { isLowerOrDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// The name toolgate would accept for a client's name that does not fit: lower-cased, other characters as `-`,
    /// leading separators dropped, cut to 32. Nil when nothing usable is left.
    public static func suggestion(for name: String) -> String? {
        var out: [UInt8] = []
        for scalar in name.lowercased().unicodeScalars {
            if scalar.isASCII, let byte = UInt8(exactly: scalar.value),
                isLowerOrDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            {
                out.append(byte)
            } else if out.last != UInt8(ascii: "-") {
                out.append(UInt8(ascii: "-"))
            }
        }
        while let first = out.first, !isLowerOrDigit(first) { out.removeFirst() }
        out = Array(out.prefix(maximumLength))
        while let last = out.last, last == UInt8(ascii: "-") { out.removeLast() }
        let suggestion = String(decoding: out, as: UTF8.self)
        return isValid(suggestion) ? suggestion : nil
    }

    private static func isLowerOrDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}
