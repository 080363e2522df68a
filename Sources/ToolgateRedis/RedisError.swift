import ToolgateCore

/// A failure to get a reply from Redis. A Redis *error reply* is not one of these: it arrives as
/// `RedisValue.error`, because the caller decides what it means (`NOSCRIPT` means "load the script and retry").
public struct RedisError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// `--redis` does not parse.
        case invalidURL
        /// The TLS settings cannot be used (a CA, certificate or key file that does not load).
        case tlsConfiguration
        /// No connection is up (refused, unreachable, handshake refused, connection lost). Callers fail fast with
        /// this while the client reconnects in the background.
        case connectionFailed
        /// The command was sent but its reply did not arrive within the operation timeout. It may still run:
        /// its reply, if any, goes to `onLateReply`.
        case timeout
        /// Redis sent something hiredis cannot parse, or the command is one a shared connection cannot carry.
        case protocolError
        /// The client was shut down.
        case closed
    }

    public let code: Code
    /// Says what failed and what to do about it; written for logs and operators.
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension RedisError {
    static func invalidURL(_ text: String, _ problem: String) -> RedisError {
        RedisError(code: .invalidURL, message: "invalid Redis URL \"\(redacted(text))\": \(problem)")
    }

    static func tlsConfiguration(_ message: String) -> RedisError {
        RedisError(code: .tlsConfiguration, message: message)
    }

    static func connectionFailed(_ url: RedisURL, _ detail: String) -> RedisError {
        RedisError(
            code: .connectionFailed,
            message: "Redis at \(url.host):\(url.port) is unavailable: \(detail); toolgate keeps reconnecting in the background")
    }

    static func timeout(_ url: RedisURL, after timeout: Duration) -> RedisError {
        RedisError(
            code: .timeout,
            message: "Redis at \(url.host):\(url.port) sent no reply within \(format(timeout)); the command may still run")
    }

    static func protocolError(_ detail: String) -> RedisError {
        RedisError(code: .protocolError, message: "Redis protocol error: \(detail)")
    }

    static let closed = RedisError(code: .closed, message: "the Redis client was shut down")

    /// Replaces the credentials of a URL-looking text, so an error message can quote what was given.
    static func redacted(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://"), let at = text.lastIndex(of: "@"), at > schemeEnd.upperBound else {
            return text
        }
        return text[..<schemeEnd.upperBound] + "***" + text[at...]
    }

    /// `100 ms`, `1 s`, `1.5 s`.
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds) ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        return "\(Double(milliseconds) / 1000) s"
    }
}

extension LimitStoreError {
    /// A Redis failure as the stores report it: a timeout stays a timeout, anything else is unavailability.
    init(_ error: RedisError) {
        self.init(code: error.code == .timeout ? .timeout : .unavailable, message: "redis: \(error.message)")
    }
}
