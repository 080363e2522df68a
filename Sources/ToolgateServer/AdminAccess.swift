import Crypto
import HTTPTypes
import ToolgateCore

/// Who may use `/admin/*`: a caller presenting the admin token, as `Authorization: Bearer …` (the API and the CLI)
/// or as the page's login cookie. Compared in constant time: both sides are hashed first, so neither the length nor
/// the first differing byte shows in the timing.
struct AdminAccess: Sendable {
    private let tokenDigest: [UInt8]

    static let cookieName = "toolgate_admin"

    init(token: String) {
        tokenDigest = Array(SHA256.hash(data: Array(token.utf8)))
    }

    func accepts(_ candidate: String) -> Bool {
        let digest = Array(SHA256.hash(data: Array(candidate.utf8)))
        var difference: UInt8 = 0
        for (a, b) in zip(digest, tokenDigest) { difference |= a ^ b }
        return difference == 0
    }

    /// The bearer token, or the login cookie when `allowCookie` (the page's own requests).
    func isAuthorized(_ headers: HTTPFields, allowCookie: Bool) -> Bool {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased().isExactly("bearer"), accepts(String(parts[1]).trimmingWhitespace) { return true }
        }
        if allowCookie, let token = Self.cookie(Self.cookieName, in: headers) { return accepts(token) }
        return false
    }

    /// A cookie's value from every `Cookie` field.
    static func cookie(_ name: String, in headers: HTTPFields) -> String? {
        for field in headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingWhitespace.isExactly(name) { return String(parts[1]).trimmingWhitespace }
            }
        }
        return nil
    }
}
