/// Where the Redis server is and how to log in: the value of `--redis`.
///
/// `rediss://` asks for TLS (OpenSSL on the socket, `RedisTLSContext`); there is no plaintext fallback.
public struct RedisURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// With a password, `AUTH user pass` (an ACL user); without, `AUTH pass` (the `default` user).
    public var username: String?
    public var password: String?
    /// Selected with `SELECT` on every (re)connect.
    public var database: Int
    /// `rediss://`: every byte, AUTH included, goes through TLS.
    public var usesTLS: Bool

    public init(
        host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0, usesTLS: Bool = false
    ) {
        self.usesTLS = usesTLS
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// `redis://[user:pass@]host[:port][/db]` (`rediss://` for TLS), with port 6379 and database 0 by default. User and password may be
    /// percent-encoded (`%40` for `@`); an IPv6 host goes in brackets (`redis://[::1]:6379`).
    public init(parsing text: String) throws(RedisError) {
        let schemeEnd = text.range(of: "://")
        let scheme = schemeEnd.map { text[..<$0.lowerBound].lowercased() }
        let usesTLS: Bool
        switch scheme {
        case "redis":
            usesTLS = false
        case "rediss":
            usesTLS = true
        default:
            throw .invalidURL(text, "expected redis://[user:password@]host[:port][/db], or rediss:// for TLS")
        }
        var rest = text[schemeEnd!.upperBound...]

        // The last "@" ends the credentials, so an unencoded "@" or "/" in a password still parses.
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw .invalidURL(text, "a user name needs a password: write redis://user:password@host, or redis://:password@host for the default user")
            }
            let user = try Self.percentDecoded(credentials[..<colon], part: "user name", in: text)
            let pass = try Self.percentDecoded(credentials[credentials.index(after: colon)...], part: "password", in: text)
            guard !pass.isEmpty else { throw .invalidURL(text, "the password is empty") }
            username = user.isEmpty ? nil : user
            password = pass
        }

        guard !rest.contains(where: { $0 == "?" || $0 == "#" }) else {
            throw .invalidURL(text, "query parameters and fragments are not supported")
        }
        let slash = rest.firstIndex(of: "/")
        let authority = rest[..<(slash ?? rest.endIndex)]
        let path = slash.map { rest[rest.index(after: $0)...] } ?? ""

        let (host, portText) = try Self.splitHostAndPort(authority, in: text)
        guard !host.isEmpty else { throw .invalidURL(text, "the host is missing") }
        var port = 6379
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .invalidURL(text, "the port \"\(portText)\" is not a number from 1 to 65535")
            }
            port = value
        }
        var database = 0
        if !path.isEmpty {
            guard let value = Int(path), value >= 0, path.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .invalidURL(text, "the path \"/\(path)\" is not a database number")
            }
            database = value
        }
        self.init(host: host, port: port, username: username, password: password, database: database, usesTLS: usesTLS)
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`.
    private static func splitHostAndPort(_ authority: Substring, in text: String) throws(RedisError) -> (String, Substring?) {
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .invalidURL(text, "the IPv6 address has no closing \"]\"")
            }
            let host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.isEmpty { return (host, nil) }
            guard after.hasPrefix(":") else { throw .invalidURL(text, "unexpected \"\(after)\" after the IPv6 address") }
            return (host, after.dropFirst())
        }
        guard let colon = authority.firstIndex(of: ":") else { return (String(authority), nil) }
        return (String(authority[..<colon]), authority[authority.index(after: colon)...])
    }

    private static func percentDecoded(_ part: Substring, part name: String, in text: String) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(part.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw .invalidURL(text, "the \(name) has a bad percent escape: use %XX with two hex digits")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw .invalidURL(text, "the \(name) is not valid UTF-8 once decoded")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension RedisURL: CustomStringConvertible {
    /// For logs: the password never appears.
    public var description: String {
        let credentials = password == nil ? "" : "\(username ?? ""):***@"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(usesTLS ? "rediss" : "redis")://\(credentials)\(hostPart):\(port)/\(database)"
    }
}
