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

    public var doubleValue: Double { Double(literal) ?? .nan }

    /// The exact integer, when the literal is one (`3`, `3.0`, `3e2`) and fits in 64 bits.
    public var int64Value: Int64? {
        if let exact = Int64(literal) { return exact }
        let d = doubleValue
        guard d.isFinite, d.rounded(.towardZero) == d, abs(d) < 9.007_199_254_740_992e15 else { return nil }
        return Int64(d)
    }

    public var description: String { literal }
}

extension JSONNumber: Equatable, Comparable {
    /// Numeric equality: `1`, `1.0` and `1e0` are equal.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if let l = Int64(lhs.literal), let r = Int64(rhs.literal) { return l == r }
        return lhs.doubleValue == rhs.doubleValue
    }

    public static func < (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if let l = Int64(lhs.literal), let r = Int64(rhs.literal) { return l < r }
        return lhs.doubleValue < rhs.doubleValue
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
    }

    public var members: [Member]

    public init(_ members: [Member] = []) { self.members = members }

    public subscript(key: String) -> JSONValue? {
        get {
            for member in members where member.key == key { return member.value }
            return nil
        }
        set {
            if let index = members.firstIndex(where: { $0.key == key }) {
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
