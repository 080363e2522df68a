/// Values from outside (tool names, ids, header values, upstream text) go into log fields; escaped, no control
/// character reaches a log line raw, so a tool name holding a newline cannot forge a line of its own, and bidi
/// controls cannot make one value read as another (DESIGN.md section 3).
public enum LogFieldEscaping {
    /// `text` with every C0 and C1 control, DEL, line and paragraph separator and bidi control written as a visible
    /// escape (`\n`, `\u{202E}`). Plain text comes back unchanged, without a copy.
    public static func escaped(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 >= 0xC2 }) else {
            return text
        }
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            let escape: String
            switch scalar {
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            default: escape = "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
            out.append(contentsOf: escape.unicodeScalars)
        }
        return String(out)
    }

    /// Whether a scalar is written as an escape.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidi controls
        case 0x2028, 0x2029: true  // line and paragraph separators
        default: false
        }
    }
}
