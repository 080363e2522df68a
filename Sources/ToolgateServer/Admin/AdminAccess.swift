import Crypto
import HTTPTypes
import ToolgateCore

/// Who may use `/admin/*` (DESIGN.md section 6): a caller presenting the admin token as `Authorization: Bearer …`
/// (the API and the CLI), or the page with a live sign-in's secret in `X-Toolgate-Admin-Session`. Nothing else:
/// cookies are not read at all, since a browser sends them to every port of the host, where an agent may serve
/// pages. The token is compared in constant time: both sides are hashed first, so neither the length nor the
/// first differing byte shows in the timing.
struct AdminAccess: Sendable {
    private let tokenDigest: [UInt8]
    let sessions: AdminSessions

    static let sessionHeader = HTTPField.Name("X-Toolgate-Admin-Session")!

    init(token: String, sessions: AdminSessions = AdminSessions()) {
        tokenDigest = Array(SHA256.hash(data: Array(token.utf8)))
        self.sessions = sessions
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

    /// How a request proved itself, if it did.
    enum Credential: Equatable {
        case token
        case session(secret: String)
    }

    func credential(_ headers: HTTPFields) -> Credential? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased().isExactly("bearer"), accepts(String(parts[1]).trimmingWhitespace) { return .token }
        }
        let secrets = headers[values: Self.sessionHeader]
        if secrets.count == 1, let secret = secrets.first?.trimmingWhitespace, !secret.isEmpty, secret.utf8.count <= 256,
            sessions.isSignedIn(secret: secret)
        {
            return .session(secret: secret)
        }
        return nil
    }
}
