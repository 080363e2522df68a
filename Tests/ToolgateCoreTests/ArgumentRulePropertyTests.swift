import Foundation
import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// Random arguments (combining marks, astral characters, KELVIN SIGN, huge and fractional numbers, values of
/// mixed types, JSON hidden in strings) against random rules: never a crash, and the same answer as a small
/// reference evaluator written here from DESIGN.md section 4 alone, on other types (scalar arrays for strings,
/// Foundation's `Decimal` for numbers, and the generator's own record of which strings hold which JSON).
@Suite struct ArgumentRulePropertyTests {
    // MARK: Reference

    /// A value as the reference sees it.
    indirect enum Ref: Equatable {
        case null, bool(Bool), number(String), string([Unicode.Scalar]), array([Ref]), object([(String, Ref)])

        /// Equal under every reading of the numbers in them (`every`), or under some reading.
        static func equal(_ a: Ref, _ b: Ref, every: Bool) -> Bool {
            switch (a, b) {
            case (.number(let x), .number(let y)):
                let results = readings.map { $0(x, y) == 0 }
                return every ? results.allSatisfy { $0 } : results.contains(true)
            case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1, every: every) }
            case (.object(let x), .object(let y)):
                return x.count == y.count && x.allSatisfy { k, v in
                    y.contains { Array($0.0.unicodeScalars) == Array(k.unicodeScalars) && equal($0.1, v, every: every) }
                }
            default: return a == b
            }
        }

        static func == (a: Ref, b: Ref) -> Bool {
            switch (a, b) {
            case (.null, .null): true
            case (.bool(let x), .bool(let y)): x == y
            case (.number(let x), .number(let y)): Decimal(string: x)! == Decimal(string: y)!
            case (.string(let x), .string(let y)): x == y
            case (.array(let x), .array(let y)): x == y
            case (.object(let x), .object(let y)):
                x.count == y.count && x.allSatisfy { k, v in y.contains { Array($0.0.unicodeScalars) == Array(k.unicodeScalars) && $0.1 == v } }
            default: false
            }
        }

        var typeTag: Int {
            switch self {
            case .null: 0
            case .bool: 1
            case .number: 2
            case .string: 3
            case .array: 4
            case .object: 5
            }
        }

        init(_ v: JSONValue) {
            switch v {
            case .null: self = .null
            case .bool(let b): self = .bool(b)
            case .number(let n): self = .number(n.literal)
            case .string(let s): self = .string(Array(s.unicodeScalars))
            case .array(let a): self = .array(a.map(Ref.init))
            case .object(let o): self = .object(o.members.map { ($0.key, Ref($0.value)) })
            }
        }

    }

    /// The readings of DESIGN.md section 4's "Rules see what the upstream will see", independently: exact
    /// (`Decimal`, exact for these literals), all doubles (JavaScript), and Python's (integer literals exact,
    /// others doubles, an integer against a large double by the double's exact digits from `%.0f`).
    static let readings: [@Sendable (String, String) -> Int] = [
        { x, y in let a = Decimal(string: x)!, b = Decimal(string: y)!; return a == b ? 0 : (a < b ? -1 : 1) },
        { x, y in let a = Double(x)!, b = Double(y)!; return a == b ? 0 : (a < b ? -1 : 1) },
        { x, y in
            func isInt(_ s: String) -> Bool { !s.contains { $0 == "." || $0 == "e" || $0 == "E" } }
            if isInt(x) == isInt(y) {
                if isInt(x) { let a = Decimal(string: x)!, b = Decimal(string: y)!; return a == b ? 0 : (a < b ? -1 : 1) }
                let a = Double(x)!, b = Double(y)!; return a == b ? 0 : (a < b ? -1 : 1)
            }
            let (intText, floatText, flip) = isInt(x) ? (x, y, 1) : (y, x, -1)
            let d = Double(floatText)!
            let order: Int
            if abs(d) >= 9_007_199_254_740_992 {
                let a = Decimal(string: intText)!, b = Decimal(string: String(format: "%.0f", d))!
                order = a == b ? 0 : (a < b ? -1 : 1)
            } else {
                let a = Double(intText)!
                order = a == d ? 0 : (a < d ? -1 : 1)
            }
            return order * flip
        },
    ]

    enum RefLookup { case found(Ref), missing, unreadable }

    /// `hidden`: the strings that hold JSON, by their bytes, with the value each holds; any other string that
    /// starts like an object or array does not parse.
    static func refLookUp(_ path: [String], _ root: Ref, hidden: [[UInt8]: Ref]) -> RefLookup {
        var current = root
        for component in path {
            if case .string(let scalars) = current, let first = scalars.first(where: { !" \t\n\r".unicodeScalars.contains($0) }),
                first == "{" || first == "["
            {
                let text = String(String.UnicodeScalarView(scalars))
                guard let parsed = hidden[Array(text.utf8)] else { return .unreadable }
                current = parsed
            }
            guard case .object(let members) = current,
                let next = members.first(where: { Array($0.0.unicodeScalars) == Array(component.unicodeScalars) })?.1
            else { return .missing }
            current = next
        }
        return .found(current)
    }

    enum RefOp { case eq(Ref), neq(Ref), `in`([Ref]), notIn([Ref]), lt(String), gte(String), contains(Ref), exists(Bool), maxLength(Int) }

    static func refHolds(_ op: RefOp, path: [String], _ arguments: Ref, hidden: [[UInt8]: Ref]) -> Bool {
        let value: Ref
        switch refLookUp(path, arguments, hidden: hidden) {
        case .unreadable: return false
        case .missing:
            if case .exists(false) = op { return true }
            return false
        case .found(let v): value = v
        }
        switch op {
        case .eq(let x): return Ref.equal(value, x, every: true)
        case .neq(let x): return value.typeTag == x.typeTag && !Ref.equal(value, x, every: false)
        case .in(let xs): return xs.contains { Ref.equal(value, $0, every: true) }
        case .notIn(let xs): return xs.contains { $0.typeTag == value.typeTag } && !xs.contains { Ref.equal(value, $0, every: false) }
        case .lt(let d): if case .number(let v) = value { return readings.allSatisfy { $0(v, d) < 0 } } else { return false }
        case .gte(let d): if case .number(let v) = value { return readings.allSatisfy { $0(v, d) >= 0 } } else { return false }
        case .contains(let needle):
            switch (value, needle) {
            case (.string(let s), .string(let n)):
                if n.isEmpty { return true }
                guard n.count <= s.count else { return false }
                return (0...(s.count - n.count)).contains { Array(s[$0..<($0 + n.count)]) == n }
            case (.array(let a), _): return a.contains { Ref.equal($0, needle, every: true) }
            default: return false
            }
        case .exists(let e): return e
        case .maxLength(let m):
            switch value {
            case .string(let s): return s.count <= m
            case .array(let a): return a.count <= m
            default: return false
            }
        }
    }

    // MARK: Generators

    struct Gen {
        var rng: SeededGenerator
        var hidden: [[UInt8]: Ref] = [:]
        static let keys = ["a", "b", "K", "\u{212A}", "e\u{301}", "\u{e9}", "x\u{316}\u{301}", "\u{1F600}"]
        static let strings = ["", "a", "K", "\u{212A}", "e\u{301}", "\u{e9}", "ab", "\u{1F600}x", "\r\n", "\u{0}", "1000", "true", "yes", "00"]
        static let numbers = ["0", "-0", "1", "1.0", "1e0", "0.10", "1000", "1e3", "1234567890123456789", "1234567890123456768.0",
                              "1234567890123456768", "1234567890123456769.0", "1000.00000000000001", "2.0000000000000001", "2",
                              "-2.5", "2.50", "99999999999999999999999999", "1e-7", "0.0000001", "4095.99999999999999", "4096"]

        mutating func scalarString() -> String {
            var s = ""
            for _ in 0..<Int.random(in: 0...3, using: &rng) { s += Self.strings.randomElement(using: &rng)! }
            if Int.random(in: 0..<10, using: &rng) == 0 { s += "a" + String(repeating: "\u{316}\u{301}", count: Int.random(in: 1...300, using: &rng)) }
            return s
        }

        mutating func value(depth: Int = 0) -> JSONValue {
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
                hidden[Array(text.utf8)] = Ref(inner)
                return .string(text)
            default: return object(depth: depth + 1)
            }
        }

        mutating func object(depth: Int) -> JSONValue {
            var members: [JSONObject.Member] = []
            for key in Self.keys.shuffled(using: &rng).prefix(Int.random(in: 0...4, using: &rng)) {
                members.append(JSONObject.Member(key: key, value: value(depth: depth)))
            }
            return .object(JSONObject(members))
        }

        mutating func path() -> [String] { (0..<Int.random(in: 1...2, using: &rng)).map { _ in Self.keys.randomElement(using: &rng)! } }

        mutating func rule() -> (ArgumentRule.Operator, RefOp) {
            let v = value(depth: 2)
            let options = (0..<Int.random(in: 1...3, using: &rng)).map { _ in value(depth: 2) }
            let n = JSONNumber(literal: Self.numbers.randomElement(using: &rng)!)
            switch Int.random(in: 0..<9, using: &rng) {
            case 0: return (.eq(v), .eq(Ref(v)))
            case 1: return (.neq(v), .neq(Ref(v)))
            case 2: return (.in(options), .in(options.map(Ref.init)))
            case 3: return (.notIn(options), .notIn(options.map(Ref.init)))
            case 4: return (.lt(n), .lt(n.literal))
            case 5: return (.gte(n), .gte(n.literal))
            case 6:
                let needle: JSONValue = Bool.random(using: &rng) ? .string(scalarString()) : v
                return (.contains(needle), .contains(Ref(needle)))
            case 7:
                let e = Bool.random(using: &rng)
                return (.exists(e), .exists(e))
            default:
                let m = Int.random(in: 0...5, using: &rng)
                return (.maxLength(m), .maxLength(m))
            }
        }
    }

    @Test(arguments: Array(1...40) as [UInt64])
    func rulesAgreeWithTheReference(seed: UInt64) {
        var gen = Gen(rng: SeededGenerator(seed: seed))
        for step in 0..<300 {
            let arguments = gen.object(depth: 0)
            let path = gen.path()
            let (op, refOp) = gen.rule()
            let rule = ArgumentRule(path: path, op: op)
            let expected = Self.refHolds(refOp, path: path, Ref(arguments), hidden: gen.hidden)
            #expect(rule.holds(for: arguments) == expected, "seed \(seed) step \(step): \(path) \(op) on \(JSONWriter.string(arguments))")
        }
    }
}
