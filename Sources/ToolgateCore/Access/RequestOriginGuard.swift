/// DNS-rebinding protection. A sidecar on loopback is reachable from any page the host's browser opens;
/// a rebound domain arrives with its own name in `Host`, and a page's fetch carries its `Origin`.
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

    /// Nil when the request may proceed; otherwise why it gets 403.
    public func rejection(host: String?, origin: String?) -> String? {
        if let host {
            let name = Self.hostName(host)
            if boundToLoopback {
                if !Self.loopbackNames.contains(name) { return "Host \"\(host)\" is not a loopback name" }
            } else if !allowedHosts.isEmpty, !allowedHosts.contains(name) {
                return "Host \"\(host)\" is not allowed (see --allowed-host)"
            }
        }
        if let origin, !allowedOrigins.contains(Self.normalizedOrigin(origin)) {
            return "Origin \"\(origin)\" is not allowed (see --allowed-origin)"
        }
        return nil
    }

    /// `Host` without its port, lower-cased: `LOCALHOST:8931` → `localhost`, `[::1]:80` → `[::1]`.
    static func hostName(_ host: String) -> String {
        let lower = host.trimmingWhitespace.lowercased()
        if lower.hasPrefix("[") {
            if let close = lower.firstIndex(of: "]") { return String(lower[...close]) }
            return lower
        }
        if let colon = lower.lastIndex(of: ":") { return String(lower[..<colon]) }
        return lower
    }

    static func normalizedOrigin(_ origin: String) -> String {
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
