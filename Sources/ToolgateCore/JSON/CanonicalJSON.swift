/// One canonical text per JSON value, so the same arguments always hash the same (an approval's binding, DESIGN.md
/// section 6): object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaped minimally (as
/// `JSONWriter` does), and numbers written by value rather than as sent: `1`, `1.0`, `1e0` and `10e-1` are all `1`,
/// `0.5` and `5e-1` are `0.5`, and exponents appear only outside 1e-6 ... 1e21, as `1.5e+30`.
public enum CanonicalJSON {
    public static func bytes(_ value: JSONValue) -> [UInt8] { JSONWriter.bytes(canonical(value)) }

    public static func string(_ value: JSONValue) -> String { String(decoding: bytes(value), as: UTF8.self) }

    /// The same value with its members sorted and its numbers respelled; `JSONWriter` then writes it compactly.
    static func canonical(_ value: JSONValue) -> JSONValue {
        switch value {
        case .null, .bool, .string: value
        case .number(let n): .number(JSONNumber(literal: number(n)))
        case .array(let elements): .array(elements.map(canonical))
        case .object(let object):
            .object(
                JSONObject(
                    object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                        .map { JSONObject.Member(key: $0.key, value: canonical($0.value)) }))
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
