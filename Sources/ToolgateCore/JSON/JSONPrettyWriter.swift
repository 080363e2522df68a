/// Serializes a `JSONValue` for a file a person reads and edits (a client's MCP config, the servers file `wrap`
/// writes): members in their order, one per line, indented as the file was. Short arrays of scalars stay on one line,
/// as people write `"args": ["-y", "server"]`. Numbers are written as their original literal.
public enum JSONPrettyWriter {
    /// Arrays of scalars at most this long (written inline) stay on one line.
    static let inlineArrayWidth = 100

    public static func bytes(_ value: JSONValue, indent: String = "  ", trailingNewline: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        write(value, indent: Array(indent.utf8), depth: 0, into: &out)
        if trailingNewline { out.append(0x0A) }
        return out
    }

    /// The indentation unit of a JSON text (the whitespace before its first indented line), so a rewritten file keeps
    /// the look its owner chose; nil when nothing is indented.
    public static func indentation(of bytes: [UInt8]) -> String? {
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x0A {
                var end = index + 1
                while end < bytes.count, bytes[end] == 0x20 || bytes[end] == 0x09 { end += 1 }
                if end > index + 1, end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D {
                    return String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
                }
            }
            index += 1
        }
        return nil
    }

    private static func write(_ value: JSONValue, indent: [UInt8], depth: Int, into out: inout [UInt8]) {
        switch value {
        case .array(let elements) where !elements.isEmpty:
            if let inline = inlineArray(elements) {
                out += inline
                return
            }
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent, depth + 1, into: &out)
                write(element, indent: indent, depth: depth + 1, into: &out)
            }
            newline(indent, depth, into: &out)
            out.append(UInt8(ascii: "]"))
        case .object(let object) where !object.members.isEmpty:
            out.append(UInt8(ascii: "{"))
            for (i, member) in object.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent, depth + 1, into: &out)
                JSONWriter.writeString(member.key, into: &out)
                out += Array(": ".utf8)
                write(member.value, indent: indent, depth: depth + 1, into: &out)
            }
            newline(indent, depth, into: &out)
            out.append(UInt8(ascii: "}"))
        default:
            JSONWriter.write(value, into: &out)
        }
    }

    private static func inlineArray(_ elements: [JSONValue]) -> [UInt8]? {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, element) in elements.enumerated() {
            switch element {
            case .array, .object: return nil
            default: break
            }
            if i > 0 { out += Array(", ".utf8) }
            JSONWriter.write(element, into: &out)
            if out.count > inlineArrayWidth { return nil }
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    private static func newline(_ indent: [UInt8], _ depth: Int, into out: inout [UInt8]) {
        out.append(0x0A)
        for _ in 0..<depth { out += indent }
    }
}
