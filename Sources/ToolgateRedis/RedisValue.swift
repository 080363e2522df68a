/// One RESP2 reply, as Redis sent it. Bulk strings stay bytes: keys, script results and arguments are
/// binary-safe, and only the caller knows which ones are text.
public enum RedisValue: Sendable, Equatable {
    case simpleString(String)
    /// A Redis error reply, such as `NOSCRIPT No matching script. Please use EVAL.`: a normal answer, not a failure
    /// of the client.
    case error(String)
    case integer(Int64)
    /// nil is the null bulk string (`$-1`), for example `GET` of a missing key or a Lua `false`.
    case bulkString([UInt8]?)
    /// nil is the null array (`*-1`), for example `BLPOP` that timed out.
    case array([RedisValue]?)
}

extension RedisValue {
    /// The text of a simple or bulk string, if it is valid UTF-8; nil for every other kind of reply.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes?): String(validating: bytes, as: UTF8.self)
        default: nil
        }
    }
}
