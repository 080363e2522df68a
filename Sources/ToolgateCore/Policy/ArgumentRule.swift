/// A condition on a call's arguments. A missing path fails every operator except `exists: false`, unless the rule
/// is `optional`: then a missing path passes (a server fills in its default), and a present value is judged as usual.
public struct ArgumentRule: Sendable {
    public enum Operator: Sendable {
        case eq(JSONValue)
        case neq(JSONValue)
        case `in`([JSONValue])
        case notIn([JSONValue])
        case lt(JSONNumber)
        case lte(JSONNumber)
        case gt(JSONNumber)
        case gte(JSONNumber)
        case regex(CompiledRegex)
        /// A string containing a substring, or an array containing an element.
        case contains(JSONValue)
        case exists(Bool)
        /// Unicode scalars of a string, or elements of an array.
        case maxLength(Int)
    }

    public let path: [String]
    public let op: Operator
    /// Shown to the agent when the condition fails; a description of the condition otherwise.
    public let reason: String?
    /// `"optional": true`: the rule holds when its path is absent. `exists` keeps its meaning (it is about presence).
    public let optional: Bool

    public init(path: [String], op: Operator, reason: String? = nil, optional: Bool = false) {
        self.path = path
        self.op = op
        self.reason = reason
        self.optional = optional
    }

    public var pathText: String { path.joined(separator: ".") }

    /// Rules see what the upstream will see (DESIGN.md section 4): MCP SDK servers coerce leniently, so a
    /// positive operator fails on a value of another JSON type, a negative one (`neq`, `not_in`) holds only for
    /// a value of the policy value's type (no coercion can turn it into the forbidden value), and paths descend
    /// into strings that hold JSON objects or arrays, which such servers parse.
    public func holds(for arguments: JSONValue) -> Bool {
        let value: JSONValue
        switch Self.lookUp(path, in: arguments) {
        case .found(let found): value = found
        case .missing:
            if case .exists(let expected) = op { return !expected }
            return optional
        case .unreadable:
            // The upstream may read this string as an object (Python's json.loads accepts duplicate keys, NaN,
            // lone surrogates, deeper nesting); toolgate cannot see what it holds, so no rule can hold.
            return false
        }
        switch op {
        // Numbers must satisfy the rule however the upstream reads them (`NumberReading`).
        case .eq(let expected): return value.equalsUnderEveryReading(expected)
        case .neq(let expected): return value.hasSameType(as: expected) && !value.equalsUnderSomeReading(expected)
        case .in(let options): return options.contains { value.equalsUnderEveryReading($0) }
        case .notIn(let options):
            return options.contains { value.hasSameType(as: $0) } && !options.contains { value.equalsUnderSomeReading($0) }
        case .lt(let bound): return Self.ordered(value, bound) { $0 < 0 }
        case .lte(let bound): return Self.ordered(value, bound) { $0 <= 0 }
        case .gt(let bound): return Self.ordered(value, bound) { $0 > 0 }
        case .gte(let bound): return Self.ordered(value, bound) { $0 >= 0 }
        case .regex(let regex): return value.stringValue.map { regex.match($0) == .matched } ?? false
        case .contains(let needle):
            switch value {
            case .string(let s):
                guard case .string(let sub) = needle else { return false }
                return s.containsExactly(sub)
            case .array(let elements): return elements.contains { $0.equalsUnderEveryReading(needle) }
            default: return false
            }
        case .exists(let expected): return expected
        case .maxLength(let limit):
            switch value {
            case .string(let s):
                WorkMeter.charge(s.utf8.count)
                return s.unicodeScalars.count <= limit
            case .array(let a): return a.count <= limit
            default: return false
            }
        }
    }

    /// Whether a failed check was a `regex` the engine could not decide within its bounds (the rule failed
    /// closed); the proxy logs and counts such calls, since a policy may need a simpler pattern.
    public func wasUndecided(for arguments: JSONValue) -> Bool {
        guard case .regex(let regex) = op, case .found(.string(let s)) = Self.lookUp(path, in: arguments) else { return false }
        return regex.match(s) == .limitExceeded
    }

    /// A number in order with `bound` under every reading.
    private static func ordered(_ value: JSONValue, _ bound: JSONNumber, _ holds: (Int) -> Bool) -> Bool {
        guard case .number(let n) = value else { return false }
        return NumberReading.allCases.allSatisfy { reading in reading.compare(n, bound).map(holds) ?? false }
    }

    public enum Lookup: Sendable, Equatable {
        case found(JSONValue)
        case missing
        /// A step went through a string that looks like a JSON object or array but does not parse strictly.
        case unreadable
    }

    /// Follows a dotted path through objects, and through strings that hold a JSON object or array, as a
    /// lenient server would.
    public static func lookUp(_ path: [String], in arguments: JSONValue) -> Lookup {
        var current = arguments
        for component in path {
            if case .string(let text) = current, looksLikeContainer(text) {
                guard let parsed = try? JSONParser.parse(Array(text.utf8)) else { return .unreadable }
                current = parsed
            }
            guard case .object(let object) = current, let next = object[component] else { return .missing }
            current = next
        }
        return .found(current)
    }

    /// The value at `path`, or nil when it is missing or cannot be read (see `lookUp`).
    public static func resolve(_ path: [String], in arguments: JSONValue) -> JSONValue? {
        if case .found(let value) = lookUp(path, in: arguments) { return value }
        return nil
    }

    private static func looksLikeContainer(_ text: String) -> Bool {
        var skipped = 0
        defer { WorkMeter.charge(skipped + 1) }
        guard let first = text.utf8.first(where: { skipped += 1; return $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D })
        else { return false }
        return first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
    }

    /// What the agent reads when the rule fails and the policy gave no `reason`.
    public var failureMessage: String {
        if let reason { return reason }
        let p = pathText
        switch op {
        case .eq(let v): return "argument \(p) must equal \(JSONWriter.string(v))"
        case .neq(let v): return "argument \(p) must be a \(v.typeName) other than \(JSONWriter.string(v))"
        case .in(let vs): return "argument \(p) must be one of \(JSONWriter.string(.array(vs)))"
        case .notIn(let vs): return "argument \(p) must be a value of the listed type, not one of \(JSONWriter.string(.array(vs)))"
        case .lt(let n): return "argument \(p) must be a number below \(n)"
        case .lte(let n): return "argument \(p) must be a number of at most \(n)"
        case .gt(let n): return "argument \(p) must be a number above \(n)"
        case .gte(let n): return "argument \(p) must be a number of at least \(n)"
        case .regex(let r): return "argument \(p) must match /\(r.pattern)/"
        case .contains(let v): return "argument \(p) must contain \(JSONWriter.string(v))"
        case .exists(true): return "argument \(p) is required"
        case .exists(false): return "argument \(p) is not allowed"
        case .maxLength(let n): return "argument \(p) must be at most \(n) long"
        }
    }
}
