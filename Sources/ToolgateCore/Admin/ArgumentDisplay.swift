/// How the approver's page and the CLI show what an agent asks to run (DESIGN.md section 6, "Bounds and display"):
/// every character that is invisible, or that changes how the text around it looks, becomes a visible escape
/// (`\u202e`), so `rm -rf ~` cannot be made to look like something else. Pretty JSON with numbers as their
/// literals (a browser's `JSON.parse` would round `9007199254740993`), as a list of plain and escaped pieces the
/// page shows as text and as highlighted marks.
public enum ArgumentDisplay {
    public enum Segment: Sendable, Equatable {
        case text(String)
        /// Shown highlighted: `\u202e`, `\n`, `[12 spaces]`.
        case escape(String)
    }

    /// A run of this many plain spaces or more inside a string is shown as `[N spaces]`: a long run would push what
    /// follows out of view.
    public static let spaceRunThreshold = 4

    /// Two-space indented JSON, keys in their (canonical) order, strings escaped for display.
    public static func pretty(_ value: JSONValue) -> [Segment] {
        var out = Builder()
        write(value, indent: "", into: &out)
        return out.finished
    }

    /// A single string (a tool or grant name) escaped for display, without quotes.
    public static func text(_ string: String) -> [Segment] {
        var out = Builder()
        appendEscaped(string, jsonQuoting: false, into: &out)
        return out.finished
    }

    /// The pieces joined, escapes as their text: the terminal form (`toolgate approvals list`).
    public static func plain(_ segments: [Segment]) -> String {
        segments.map { segment in
            switch segment {
            case .text(let text), .escape(let text): text
            }
        }.joined()
    }

    /// Control characters (C0, DEL, C1), bidi controls, the other default-ignorable code points, line and
    /// paragraph separators, and the spaces that look like U+0020 but are not (a shell reads `rm\u{a0}-rf` as one
    /// word).
    public static func isShownAsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        switch v {
        case 0x00...0x1F, 0x7F...0x9F: return true  // controls
        case 0xA0, 0xAD: return true  // no-break space, soft hyphen
        case 0x034F, 0x061C, 0x115F...0x1160, 0x1680, 0x17B4...0x17B5, 0x180B...0x180F: return true
        case 0x2000...0x200F: return true  // the width spaces, zero-width characters, LRM, RLM
        case 0x2028...0x202F: return true  // separators, bidi embeddings and overrides, narrow no-break space
        case 0x205F...0x206F: return true  // medium space, word joiner, invisible operators, bidi isolates, deprecated formats
        case 0x3000, 0x3164, 0xFE00...0xFE0F, 0xFEFF, 0xFFA0, 0xFFF0...0xFFF8: return true
        case 0x1BCA0...0x1BCA3, 0x1D173...0x1D17A, 0xE0000...0xE0FFF: return true
        default: return false
        }
    }

    /// `\n`, `\t`, `\r`, `\u202e`, `\u{e0041}`.
    public static func escape(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default:
            let hex = String(scalar.value, radix: 16)
            return scalar.value > 0xFFFF ? "\\u{\(hex)}" : "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
    }

    private struct Builder {
        var segments: [Segment] = []
        var pending = ""

        mutating func text(_ s: String) { pending += s }
        mutating func scalar(_ s: Unicode.Scalar) { pending.unicodeScalars.append(s) }
        mutating func escape(_ s: String) {
            flush()
            segments.append(.escape(s))
        }
        mutating func flush() {
            if !pending.isEmpty { segments.append(.text(pending)) }
            pending = ""
        }
        var finished: [Segment] {
            mutating get {
                flush()
                return segments
            }
        }
    }

    private static func write(_ value: JSONValue, indent: String, into out: inout Builder) {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out.text("[\n")
            for (i, element) in elements.enumerated() {
                out.text(inner)
                write(element, indent: inner, into: &out)
                out.text(i == elements.count - 1 ? "\n" : ",\n")
            }
            out.text(indent + "]")
        case .object(let object) where object.count > 0:
            out.text("{\n")
            for (i, member) in object.members.enumerated() {
                out.text(inner)
                appendEscaped(member.key, jsonQuoting: true, into: &out)
                out.text(": ")
                write(member.value, indent: inner, into: &out)
                out.text(i == object.count - 1 ? "\n" : ",\n")
            }
            out.text(indent + "}")
        case .string(let string):
            appendEscaped(string, jsonQuoting: true, into: &out)
        default:
            out.text(JSONWriter.string(value))
        }
    }

    /// With `jsonQuoting`, in quotes with `"` and `\` escaped as JSON does (so a literal backslash-u in the text
    /// shows as `\\u`, never as an escape).
    private static func appendEscaped(_ string: String, jsonQuoting: Bool, into out: inout Builder) {
        if jsonQuoting { out.text("\"") }
        let scalars = Array(string.unicodeScalars)
        var i = 0
        while i < scalars.count {
            let scalar = scalars[i]
            if scalar == " " {
                var end = i
                while end < scalars.count, scalars[end] == " " { end += 1 }
                let run = end - i
                if run >= spaceRunThreshold {
                    out.escape("[\(run) spaces]")
                } else {
                    out.text(String(repeating: " ", count: run))
                }
                i = end
                continue
            }
            if isShownAsEscape(scalar) {
                out.escape(escape(scalar))
            } else if jsonQuoting, scalar == "\"" || scalar == "\\" {
                out.text("\\")
                out.scalar(scalar)
            } else {
                out.scalar(scalar)
            }
            i += 1
        }
        if jsonQuoting { out.text("\"") }
    }
}
