/// One canonical text per JSON value, so the same arguments always hash the same (an approval's binding, DESIGN.md
/// section 6): object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaped minimally (as
/// `JSONWriter` does), and numbers written by value rather than as sent: `1`, `1.0`, `1e0` and `10e-1` are all `1`,
/// `0.5` and `5e-1` are `0.5`, and exponents appear only outside 1e-6 ... 1e21, as `1.5e+30`.
public enum CanonicalJSON {
    public static func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(value, into: &out)
        return out
    }

    public static func string(_ value: JSONValue) -> String { String(decoding: bytes(value), as: UTF8.self) }

    private static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: number(n).utf8)
        case .string(let s): JSONWriter.writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            let members = object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The number's value, exactly, in one spelling.
    static func number(_ n: JSONNumber) -> String {
        let d = ExactDecimal(n.literal)
        if d.digits.isEmpty { return "0" }
        let digits = String(decoding: d.digits.map { $0 + 0x30 }, as: UTF8.self)
        let sign = d.negative ? "-" : ""
        // The value is 0.d1d2…dn × 10^point.
        if d.point > 0, d.point <= 21 {
            if d.digits.count <= d.point { return sign + digits + String(repeating: "0", count: d.point - d.digits.count) }
            let split = digits.index(digits.startIndex, offsetBy: d.point)
            return sign + digits[..<split] + "." + digits[split...]
        }
        if d.point <= 0, d.point > -6 {
            return sign + "0." + String(repeating: "0", count: -d.point) + digits
        }
        let exponent = d.point - 1
        let mantissa = digits.count == 1 ? digits : String(digits.prefix(1)) + "." + digits.dropFirst()
        return sign + mantissa + "e" + (exponent >= 0 ? "+" : "") + String(exponent)
    }
}
