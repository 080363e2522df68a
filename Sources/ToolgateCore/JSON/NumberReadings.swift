/// How an upstream may read a JSON number. Rules compare exactly (DESIGN.md section 4), but they must also see
/// what the upstream will see: a JavaScript server reads every number as a double, and Python's `json.loads`
/// reads a literal with a fraction or exponent as a double (then pydantic's lax mode turns `1000.00000000000001`
/// into the integer 1000) while it keeps an integer literal exact. A rule on a number holds only if it holds
/// under every one of these readings, with the policy's own value read the same way.
public enum NumberReading: CaseIterable, Sendable {
    /// Both as exact decimals.
    case exact
    /// Both as IEEE doubles (JavaScript).
    case double
    /// Integer literals exact, others as doubles (Python).
    case python

    /// -1, 0 or 1; nil when the two cannot be ordered (a NaN).
    public func compare(_ a: JSONNumber, _ b: JSONNumber) -> Int? {
        switch self {
        case .exact:
            return a == b ? 0 : (a < b ? -1 : 1)
        case .double:
            return Self.order(a.doubleValue, b.doubleValue)
        case .python:
            switch (a.isIntegerLiteral, b.isIntegerLiteral) {
            case (true, true): return NumberReading.exact.compare(a, b)
            case (false, false): return Self.order(a.doubleValue, b.doubleValue)
            case (true, false): return Self.compare(integer: a, double: b.doubleValue)
            case (false, true): return Self.compare(integer: b, double: a.doubleValue).map { -$0 }
            }
        }
    }

    private static func order(_ x: Double, _ y: Double) -> Int? {
        if x.isNaN || y.isNaN { return nil }
        return x == y ? 0 : (x < y ? -1 : 1)
    }

    /// An exact integer against a double. Below 2^53 the integer's own double is exact; above, every double is
    /// an integer, compared digit for digit.
    private static func compare(integer: JSONNumber, double d: Double) -> Int? {
        if d.isNaN { return nil }
        if d.isInfinite { return d > 0 ? -1 : 1 }
        let i = integer.doubleValue
        // Below 2^53 the integer's double is the integer; and rounding is monotonic, so different doubles order
        // their exact values too.
        if abs(i) < 9_007_199_254_740_992 || i != d { return order(i, d) }
        // Same double, large magnitude: d is an integer; compare it exactly.
        return ExactDecimal(integer.literal).compare(ExactDecimal(Self.integerDigits(of: d)))
    }

    /// The exact decimal digits of an integral double (|d| ≥ 2^53 here), by doubling its significand.
    static func integerDigits(of d: Double) -> String {
        var limbs: [UInt64] = [d.significandBitPattern | (1 << 52)]  // base 10^9, little-endian
        limbs = toBase1e9(limbs[0])
        for _ in 0..<(Int(d.exponent) - 52) {
            WorkMeter.charge(limbs.count)
            var carry: UInt64 = 0
            for i in limbs.indices {
                let v = limbs[i] * 2 + carry
                limbs[i] = v % 1_000_000_000
                carry = v / 1_000_000_000
            }
            if carry > 0 { limbs.append(carry) }
        }
        var text = String(limbs.last!)
        for limb in limbs.dropLast().reversed() {
            let part = String(limb)
            text += String(repeating: "0", count: 9 - part.count) + part
        }
        return (d < 0 ? "-" : "") + text
    }

    private static func toBase1e9(_ value: UInt64) -> [UInt64] {
        var v = value
        var limbs: [UInt64] = []
        repeat {
            limbs.append(v % 1_000_000_000)
            v /= 1_000_000_000
        } while v > 0
        return limbs
    }
}

extension JSONNumber {
    /// No fraction and no exponent: Python keeps such a literal as an exact integer.
    public var isIntegerLiteral: Bool {
        WorkMeter.charge(literal.utf8.count)
        return !literal.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }
}

extension JSONValue {
    /// Equal under every reading of every number in it: what `eq`, `in` and `contains` require.
    public func equalsUnderEveryReading(_ other: JSONValue) -> Bool {
        equals(other, every: true)
    }

    /// Equal under some reading of its numbers: what `neq` and `not_in` must rule out.
    public func equalsUnderSomeReading(_ other: JSONValue) -> Bool {
        equals(other, every: false)
    }

    private func equals(_ other: JSONValue, every: Bool) -> Bool {
        WorkMeter.charge(1)
        switch (self, other) {
        case (.number(let a), .number(let b)):
            let results = NumberReading.allCases.map { $0.compare(a, b) == 0 }
            return every ? results.allSatisfy { $0 } : results.contains(true)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.equals($1, every: every) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            return a.members.allSatisfy { member in b[member.key].map { member.value.equals($0, every: every) } ?? false }
        default:
            return self == other
        }
    }
}
