import ToolgateCore

/// Random arguments (combining marks, astral characters, KELVIN SIGN, huge and fractional numbers, values of
/// mixed types, JSON hidden in strings) and random rules, each rule paired with the reference's reading of it.
/// Any random source drives it: a seed in the property tests, the fuzzer's bytes in `toolgate-fuzz`.
public struct ArgumentRuleGenerator<Source: RandomNumberGenerator> {
    public typealias Reference = ArgumentRuleReference

    public var rng: Source
    /// The strings generated so far that hold valid JSON, with the value each holds.
    public var hidden: [[UInt8]: Reference.Value] = [:]

    public init(rng: Source) { self.rng = rng }

    public static var keys: [String] { ["a", "b", "K", "\u{212A}", "e\u{301}", "\u{e9}", "x\u{316}\u{301}", "\u{1F600}"] }
    static var strings: [String] { ["", "a", "K", "\u{212A}", "e\u{301}", "\u{e9}", "ab", "\u{1F600}x", "\r\n", "\u{0}", "1000", "true", "yes", "00"] }
    static var numbers: [String] {
        ["0", "-0", "1", "1.0", "1e0", "0.10", "1000", "1e3", "1234567890123456789", "1234567890123456768.0",
         "1234567890123456768", "1234567890123456769.0", "1000.00000000000001", "2.0000000000000001", "2",
         "-2.5", "2.50", "99999999999999999999999999", "1e-7", "0.0000001", "4095.99999999999999", "4096"]
    }

    public mutating func scalarString() -> String {
        var s = ""
        for _ in 0..<Int.random(in: 0...3, using: &rng) { s += Self.strings.randomElement(using: &rng)! }
        if Int.random(in: 0..<10, using: &rng) == 0 { s += "a" + String(repeating: "\u{316}\u{301}", count: Int.random(in: 1...300, using: &rng)) }
        return s
    }

    public mutating func value(depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth < 2 ? 9 : 5), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .number(JSONNumber(literal: Self.numbers.randomElement(using: &rng)!))
        case 3, 4: return .string(scalarString())
        case 5: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth: depth + 1) })
        case 6:
            // JSON hidden in a string, sometimes not strictly valid.
            let inner = object(depth: depth + 1)
            let text = JSONWriter.string(inner)
            guard Bool.random(using: &rng) else { return .string(String(text.dropLast())) }
            hidden[Array(text.utf8)] = Reference.Value(inner)
            return .string(text)
        default: return object(depth: depth + 1)
        }
    }

    public mutating func object(depth: Int) -> JSONValue {
        var members: [JSONObject.Member] = []
        for key in Self.keys.shuffled(using: &rng).prefix(Int.random(in: 0...4, using: &rng)) {
            members.append(JSONObject.Member(key: key, value: value(depth: depth)))
        }
        return .object(JSONObject(members))
    }

    public mutating func path() -> [String] { (0..<Int.random(in: 1...2, using: &rng)).map { _ in Self.keys.randomElement(using: &rng)! } }

    /// A rule's `"optional"`, true one time in three.
    public mutating func optional() -> Bool { Int.random(in: 0..<3, using: &rng) == 0 }

    public mutating func rule() -> (ArgumentRule.Operator, Reference.Operator) {
        let v = value(depth: 2)
        let options = (0..<Int.random(in: 1...3, using: &rng)).map { _ in value(depth: 2) }
        let n = JSONNumber(literal: Self.numbers.randomElement(using: &rng)!)
        switch Int.random(in: 0..<9, using: &rng) {
        case 0: return (.eq(v), .eq(Reference.Value(v)))
        case 1: return (.neq(v), .neq(Reference.Value(v)))
        case 2: return (.in(options), .in(options.map(Reference.Value.init)))
        case 3: return (.notIn(options), .notIn(options.map(Reference.Value.init)))
        case 4: return (.lt(n), .lt(n.literal))
        case 5: return (.gte(n), .gte(n.literal))
        case 6:
            let needle: JSONValue = Bool.random(using: &rng) ? .string(scalarString()) : v
            return (.contains(needle), .contains(Reference.Value(needle)))
        case 7:
            let e = Bool.random(using: &rng)
            return (.exists(e), .exists(e))
        default:
            let m = Int.random(in: 0...5, using: &rng)
            return (.maxLength(m), .maxLength(m))
        }
    }
}
