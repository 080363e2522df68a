/// A parsed JSON document.
///
/// Numbers keep their literal text so a value that toolgate re-serializes (a filtered
/// `tools/list`, say) reaches the agent exactly as the upstream wrote it.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var numberValue: JSONNumber? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The JSON type name, as used in error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Exact equality: strings by their scalars (never canonical equivalence), numbers as exact decimals,
    /// objects regardless of member order.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        WorkMeter.charge(1)
        return switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a.isExactly(b)
        case (.array(let a), .array(let b)): a.count == b.count && zip(a, b).allSatisfy { $0 == $1 }
        case (.object(let a), .object(let b)): a == b
        default: false
        }
    }

    /// Whether both are of one JSON type (all numbers are one type, as in JSON).
    public func hasSameType(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null), (.bool, .bool), (.number, .number), (.string, .string), (.array, .array), (.object, .object): true
        default: false
        }
    }

    /// Follows a dotted path through nested objects; `nil` when any step is missing.
    public func value(at path: [String]) -> JSONValue? {
        var current = self
        for component in path {
            guard case .object(let object) = current, let next = object[component] else { return nil }
            current = next
        }
        return current
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
}

/// A JSON number kept as its literal text.
public struct JSONNumber: Sendable, CustomStringConvertible {
    public let literal: String

    /// `literal` must already follow the JSON number grammar.
    public init(literal: String) { self.literal = literal }
    public init(_ value: Int) { self.literal = String(value) }
    public init(_ value: Int64) { self.literal = String(value) }

    public var doubleValue: Double {
        WorkMeter.charge(literal.utf8.count)
        return Double(literal) ?? .nan
    }

    /// The exact integer, when the literal is one (`3`, `3.0`, `3e2`, `300e-2`) and fits in 64 bits.
    public var int64Value: Int64? {
        WorkMeter.charge(literal.utf8.count)
        if let exact = Int64(literal) { return exact }
        return ExactDecimal(literal).int64Value
    }

    public var description: String { literal }
}

extension JSONNumber: Equatable, Comparable {
    /// Exact decimal equality, never through doubles: `1`, `1.0` and `1e0` are equal, and
    /// `1234567890123456768.0` is not `1234567890123456789`.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        WorkMeter.charge(lhs.literal.utf8.count + rhs.literal.utf8.count)
        if let l = Int64(lhs.literal), let r = Int64(rhs.literal) { return l == r }
        return ExactDecimal(lhs.literal).compare(ExactDecimal(rhs.literal)) == 0
    }

    public static func < (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        WorkMeter.charge(lhs.literal.utf8.count + rhs.literal.utf8.count)
        if let l = Int64(lhs.literal), let r = Int64(rhs.literal) { return l < r }
        return ExactDecimal(lhs.literal).compare(ExactDecimal(rhs.literal)) < 0
    }
}

/// A JSON number literal as sign, significant digits and decimal point position: the value is
/// `0.d₁d₂…dₙ × 10^point`, with no leading or trailing zero digit (no digits at all for zero). Comparing two is
/// linear in their length, whatever their size: no double ever rounds them.
struct ExactDecimal {
    let negative: Bool
    let digits: [UInt8]
    let point: Int

    /// Exponents beyond this are clamped: no literal within a request's size can tell them apart.
    static let exponentBound = 1 << 48

    /// `literal` follows the JSON number grammar (the parser checked it).
    init(_ literal: String) {
        WorkMeter.charge(literal.utf8.count)
        var bytes = Array(literal.utf8)[...]
        var negative = false
        if bytes.first == UInt8(ascii: "-") {
            negative = true
            bytes = bytes.dropFirst()
        }
        var digits: [UInt8] = []
        var integerDigits = 0
        var seenPoint = false
        var exponent = 0
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                seenPoint = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                var sign = 1
                var e = bytes.index(after: index)
                if e < bytes.endIndex, bytes[e] == UInt8(ascii: "-") || bytes[e] == UInt8(ascii: "+") {
                    if bytes[e] == UInt8(ascii: "-") { sign = -1 }
                    e = bytes.index(after: e)
                }
                while e < bytes.endIndex {
                    exponent = Swift.min(exponent * 10 + Int(bytes[e] - 0x30), Self.exponentBound)
                    e = bytes.index(after: e)
                }
                exponent *= sign
                break
            } else {
                digits.append(byte - 0x30)
                if !seenPoint { integerDigits += 1 }
            }
            index = bytes.index(after: index)
        }
        var leading = 0
        while leading < digits.count, digits[leading] == 0 { leading += 1 }
        var trailing = digits.count
        while trailing > leading, digits[trailing - 1] == 0 { trailing -= 1 }
        self.digits = Array(digits[leading..<trailing])
        self.negative = negative && !self.digits.isEmpty
        point = self.digits.isEmpty ? 0 : integerDigits - leading + exponent
    }

    /// -1, 0 or 1.
    func compare(_ other: ExactDecimal) -> Int {
        if negative != other.negative { return negative ? -1 : 1 }
        let magnitude = Self.compareMagnitude(self, other)
        return negative ? -magnitude : magnitude
    }

    private static func compareMagnitude(_ a: ExactDecimal, _ b: ExactDecimal) -> Int {
        if a.digits.isEmpty || b.digits.isEmpty { return a.digits.isEmpty ? (b.digits.isEmpty ? 0 : -1) : 1 }
        if a.point != b.point { return a.point < b.point ? -1 : 1 }
        WorkMeter.charge(min(a.digits.count, b.digits.count))
        for (x, y) in zip(a.digits, b.digits) where x != y { return x < y ? -1 : 1 }
        return a.digits.count == b.digits.count ? 0 : (a.digits.count < b.digits.count ? -1 : 1)
    }

    /// The value as an Int64 when it is a whole number that fits.
    var int64Value: Int64? {
        if digits.isEmpty { return 0 }
        guard point >= digits.count, point <= 19 else { return nil }
        var magnitude: UInt64 = 0
        for i in 0..<point {
            let d = UInt64(i < digits.count ? digits[i] : 0)
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            magnitude = next
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }
}

/// A JSON object that keeps its members in document order.
public struct JSONObject: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }

        public static func == (a: Member, b: Member) -> Bool { a.key.isExactly(b.key) && a.value == b.value }
    }

    public var members: [Member]

    public init(_ members: [Member] = []) { self.members = members }

    public subscript(key: String) -> JSONValue? {
        get {
            for member in members where member.key.isExactly(key) { return member.value }
            return nil
        }
        set {
            if let index = members.firstIndex(where: { $0.key.isExactly(key) }) {
                if let newValue { members[index].value = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append(Member(key: key, value: newValue))
            }
        }
    }

    public var keys: [String] { members.map(\.key) }
    public var count: Int { members.count }

    /// Order does not matter for equality, as in JSON itself.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for member in lhs.members {
            guard let other = rhs[member.key], other == member.value else { return false }
        }
        return true
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { Member(key: $0.0, value: $0.1) })
    }
}
