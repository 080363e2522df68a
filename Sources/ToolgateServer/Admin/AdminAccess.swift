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

    enum Verdict: Equatable {
        case allowed(Credential)
        case refused
        /// Too many wrong tokens from this address lately: the one presented was not looked at.
        case throttled(retryAfterSeconds: Int)
    }

    /// The bearer token (a wrong one counts towards the sign-in throttle of `clientAddress`: the API is no way
    /// around it), or a live sign-in's secret (256 random bits: guessing one is hopeless, and a page holding an
    /// expired one must not lock its address out).
    func verdict(_ headers: HTTPFields, clientAddress: String) -> Verdict {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased().isExactly("bearer") {
                let candidate = String(parts[1]).trimmingWhitespace
                switch sessions.checkToken(address: clientAddress, check: { accepts(candidate) }) {
                case .right: return .allowed(.token)
                case .throttled(let seconds): return .throttled(retryAfterSeconds: seconds)
                case .wrong: break
                }
            }
        }
        let secrets = headers[values: Self.sessionHeader]
        if secrets.count == 1, let secret = secrets.first?.trimmingWhitespace, !secret.isEmpty, secret.utf8.count <= 256,
            sessions.isSignedIn(secret: secret)
        {
            return .allowed(.session(secret: secret))
        }
        return .refused
    }
}
