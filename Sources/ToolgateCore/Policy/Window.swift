/// A limit's window: `second`, `minute`, `hour`, `day`, a number of seconds, or `90s`/`15m`/`2h`/`1d`.
public struct Window: Sendable, Hashable, CustomStringConvertible {
    public let seconds: Int
    /// The policy's value as a string, as denials report it: `"minute"`, `"90s"`; a bare number N is `"Ns"`.
    public let text: String

    /// Long enough for any real quota, short enough that every store's arithmetic stays exact.
    public static let maximumSeconds = 366 * 86_400

    public init(seconds: Int, text: String) {
        self.seconds = seconds
        self.text = text
    }

    public var micros: Int64 { Int64(seconds) * 1_000_000 }
    public var description: String { text }

    public enum ParseError: Error, Equatable {
        case unknown(String)
        case notPositive
        case tooLong
        case wrongType(String)
    }

    /// Parses a duration as the policy writes it. `allowZero` is for approval waits, where 0 means "do not wait".
    public static func parse(_ value: JSONValue, allowZero: Bool = false) -> Result<Window, ParseError> {
        let seconds: Int
        let text: String
        switch value {
        case .number(let number):
            guard let n = number.int64Value, n >= Int64(Int32.min), n <= Int64(Int32.max) else {
                return .failure(.unknown(number.literal))
            }
            seconds = Int(n)
            text = "\(n)s"
        case .string(let string):
            switch string {
            case "second": seconds = 1
            case "minute": seconds = 60
            case "hour": seconds = 3_600
            case "day": seconds = 86_400
            default:
                guard let parsed = parseDuration(string) else { return .failure(.unknown(string)) }
                seconds = parsed
            }
            text = string
        default:
            return .failure(.wrongType(value.typeName))
        }
        guard seconds > 0 || (allowZero && seconds == 0) else { return .failure(.notPositive) }
        guard seconds <= maximumSeconds else { return .failure(.tooLong) }
        return .success(Window(seconds: seconds, text: text))
    }

    /// `90s`, `15m`, `2h`, `1d`: digits then one unit.
    private static func parseDuration(_ string: String) -> Int? {
        guard let unit = string.last, string.count >= 2 else { return nil }
        let digits = string.dropLast()
        guard digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else {
            return nil
        }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3_600
        case "d": return n * 86_400
        default: return nil
        }
    }
}
