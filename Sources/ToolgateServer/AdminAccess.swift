import Crypto
import Foundation
import HTTPTypes
import ToolgateCore

/// Who may use `/admin/*`: a caller presenting the admin token as `Authorization: Bearer …` (the API and the CLI),
/// or the page's login cookie. Compared in constant time: both sides are hashed first, so neither the length nor
/// the first differing byte shows in the timing.
///
/// The cookie holds a value derived from the token, not the token: a cookie that leaks opens the page, but is no
/// bearer token for the API's decisions. The page's CSRF value is derived the same way, so it needs no server state.
struct AdminAccess: Sendable {
    private let tokenDigest: [UInt8]
    /// The login cookie's value.
    let sessionValue: String
    /// What every state-changing request from the page must carry besides the cookie (double submit).
    let csrfValue: String

    static let cookieName = "toolgate_admin"

    init(token: String) {
        tokenDigest = Array(SHA256.hash(data: Array(token.utf8)))
        sessionValue = SHA256.hash(data: Array(("toolgate-admin-session:" + token).utf8)).map { String(format: "%02x", $0) }.joined()
        csrfValue = SHA256.hash(data: Array(("toolgate-admin-csrf:" + token).utf8)).map { String(format: "%02x", $0) }.joined()
    }

    func accepts(_ candidate: String) -> Bool {
        Self.constantTimeEqual(Array(SHA256.hash(data: Array(candidate.utf8))), tokenDigest)
    }

    /// Equal digests, compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    /// A derived value (session or CSRF), compared by digest in constant time.
    static func matches(_ candidate: String, _ expected: String) -> Bool {
        constantTimeEqual(Array(SHA256.hash(data: Array(candidate.utf8))), Array(SHA256.hash(data: Array(expected.utf8))))
    }

    /// The bearer token, or the login cookie when `allowCookie` (the page's own requests).
    func isAuthorized(_ headers: HTTPFields, allowCookie: Bool) -> Bool {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased().isExactly("bearer"), accepts(String(parts[1]).trimmingWhitespace) { return true }
        }
        if allowCookie, let session = Self.cookie(Self.cookieName, in: headers) { return Self.matches(session, sessionValue) }
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
