import Foundation
import ToolgateCore

/// A small reference evaluator for argument rules, written from DESIGN.md section 4 alone, on other types than
/// toolgate's (scalar arrays for strings, Foundation's `Decimal` for numbers, and the generator's own record of
/// which strings hold which JSON). The property tests and the fuzzer both hold `ArgumentRule` to it.
public enum ArgumentRuleReference {
    /// A value as the reference sees it.
    public indirect enum Value: Equatable {
        case null, bool(Bool), number(String), string([Unicode.Scalar]), array([Value]), object([(String, Value)])

        /// Equal under every reading of the numbers in them (`every`), or under some reading.
        public static func equal(_ a: Value, _ b: Value, every: Bool) -> Bool {
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

        public static func == (a: Value, b: Value) -> Bool {
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

        public init(_ v: JSONValue) {
            switch v {
            case .null: self = .null
            case .bool(let b): self = .bool(b)
            case .number(let n): self = .number(n.literal)
            case .string(let s): self = .string(Array(s.unicodeScalars))
            case .array(let a): self = .array(a.map(Value.init))
            case .object(let o): self = .object(o.members.map { ($0.key, Value($0.value)) })
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

    enum Lookup { case found(Value), missing, unreadable }

    /// `hidden`: the strings that hold JSON, by their bytes, with the value each holds; any other string that
    /// starts like an object or array does not parse.
    static func lookUp(_ path: [String], _ root: Value, hidden: [[UInt8]: Value]) -> Lookup {
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

    public enum Operator { case eq(Value), neq(Value), `in`([Value]), notIn([Value]), lt(String), gte(String), contains(Value), exists(Bool), maxLength(Int) }

    /// `optional`: DESIGN.md section 4's `"optional": true`, under which a missing path passes the rule; `exists` is
    /// about presence and keeps its meaning, and an unreadable path (toolgate cannot see what is there) still fails.
    public static func holds(
        _ op: Operator, path: [String], optional: Bool = false, _ arguments: Value, hidden: [[UInt8]: Value]
    ) -> Bool {
        let value: Value
        switch lookUp(path, arguments, hidden: hidden) {
        case .unreadable: return false
        case .missing:
            switch op {
            case .exists(true): return false
            case .exists(false): return true
            default: return optional
            }
        case .found(let v): value = v
        }
        switch op {
        case .eq(let x): return Value.equal(value, x, every: true)
        case .neq(let x): return value.typeTag == x.typeTag && !Value.equal(value, x, every: false)
        case .in(let xs): return xs.contains { Value.equal(value, $0, every: true) }
        case .notIn(let xs): return xs.contains { $0.typeTag == value.typeTag } && !xs.contains { Value.equal(value, $0, every: false) }
        case .lt(let d): if case .number(let v) = value { return readings.allSatisfy { $0(v, d) < 0 } } else { return false }
        case .gte(let d): if case .number(let v) = value { return readings.allSatisfy { $0(v, d) >= 0 } } else { return false }
        case .contains(let needle):
            switch (value, needle) {
            case (.string(let s), .string(let n)):
                if n.isEmpty { return true }
                guard n.count <= s.count else { return false }
                return (0...(s.count - n.count)).contains { Array(s[$0..<($0 + n.count)]) == n }
            case (.array(let a), _): return a.contains { Value.equal($0, needle, every: true) }
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
}
