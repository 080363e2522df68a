/// DNS-rebinding protection. A sidecar on loopback is reachable from any page the host's browser opens;
/// a rebound domain arrives with its own name in `Host`, and a page's fetch carries its `Origin`.
///
/// Authorities are parsed strictly (RFC 3986 host and port, nothing after them), so `[::1]anything` or a
/// missing `Host` can never be read as a loopback name.
public struct RequestOriginGuard: Sendable {
    public let boundToLoopback: Bool
    /// Lower-cased host names accepted when not bound to loopback; empty means any.
    public let allowedHosts: Set<String>
    /// Lower-cased origins (`https://app.example.com`) allowed to call; none by default.
    public let allowedOrigins: Set<String>

    public init(boundToLoopback: Bool, allowedHosts: [String] = [], allowedOrigins: [String] = []) {
        self.boundToLoopback = boundToLoopback
        self.allowedHosts = Set(allowedHosts.map { $0.lowercased() })
        self.allowedOrigins = Set(allowedOrigins.map { Self.normalizedOrigin($0) })
    }

    public static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "[::1]"]

    public enum Rejection: Sendable, Equatable, CustomStringConvertible {
        /// No authority at all, or one that does not parse: HTTP 400.
        case badAuthority(String)
        /// A well-formed authority or origin that is not accepted: HTTP 403.
        case forbidden(String)

        public var description: String {
            switch self {
            case .badAuthority(let why), .forbidden(let why): why
            }
        }
    }

    /// Nil when the request may proceed. `authority` is the one the request actually used: the target's in an
    /// absolute-form request, otherwise the single `Host`.
    public func rejection(host authority: String?, origin: String?) -> Rejection? {
        guard let authority else { return .badAuthority("the request has no Host") }
        guard let parsed = Self.parseAuthority(authority) else {
            return .badAuthority("Host \"\(authority)\" is not a valid host[:port]")
        }
        if boundToLoopback {
            if !Self.loopbackNames.contains(parsed.host) { return .forbidden("Host \"\(authority)\" is not a loopback name") }
        } else if !allowedHosts.isEmpty, !allowedHosts.contains(parsed.host) {
            return .forbidden("Host \"\(authority)\" is not allowed (see --allowed-host)")
        }
        if let origin, !isAllowed(origin: origin) {
            return .forbidden("Origin \"\(origin)\" is not allowed (see --allowed-origin)")
        }
        return nil
    }

    /// Listed origins; and, when bound to loopback, any loopback origin, as the official SDK servers accept.
    private func isAllowed(origin: String) -> Bool {
        let normalized = Self.normalizedOrigin(origin)
        if allowedOrigins.contains(normalized) { return true }
        guard boundToLoopback else { return false }
        for scheme in ["http://", "https://"] where normalized.hasPrefix(scheme) {
            guard let parsed = Self.parseAuthority(String(normalized.dropFirst(scheme.count))) else { return false }
            return Self.loopbackNames.contains(parsed.host)
        }
        return false
    }

    /// `host[:port]` per RFC 3986: an IP literal in brackets, or a reg-name/IPv4 of unreserved characters,
    /// percent-escapes and sub-delimiters; the port all digits. The host comes back lower-cased.
    public static func parseAuthority(_ authority: String) -> (host: String, port: Int?)? {
        let bytes = Array(authority.utf8)
        guard !bytes.isEmpty, bytes.count <= 1_024 else { return nil }
        let hostEnd: Int
        if bytes[0] == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return nil }
            let inner = bytes[1..<close]
            guard inner.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return nil }
            hostEnd = close + 1
        } else {
            hostEnd = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.count
            guard hostEnd > 0, bytes[0..<hostEnd].allSatisfy(isRegNameByte) else { return nil }
        }
        var port: Int?
        if hostEnd < bytes.count {
            guard bytes[hostEnd] == UInt8(ascii: ":") else { return nil }
            let digits = bytes[(hostEnd + 1)...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(String(decoding: digits, as: UTF8.self)), value <= 65_535
            else { return nil }
            port = value
        }
        return (String(decoding: bytes[0..<hostEnd], as: UTF8.self).lowercased(), port)
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }

    private static func isRegNameByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("-._~%!$&'()*+,;=".utf8).contains(b)
        }
    }

    public static func normalizedOrigin(_ origin: String) -> String {
        var o = origin.trimmingWhitespace.lowercased()
        while o.hasSuffix("/") { o.removeLast() }
        return o
    }

    /// Whether a listen address is loopback, which decides the Host rule.
    public static func isLoopback(listenHost: String) -> Bool {
        let h = listenHost.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }
}
