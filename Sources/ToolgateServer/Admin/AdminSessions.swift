import Synchronization
import ToolgateCore

/// The admin page's sign-ins and the throttle on failed ones, behind one lock, on an injected clock
/// (`AdminSessionTable` and `SignInThrottle` are the pure parts).
final class AdminSessions: Sendable {
    enum SignIn: Equatable {
        case signedIn(secret: String)
        case wrongToken
        /// Too many wrong tokens from this address (or from all together) lately; the token was not looked at.
        case throttled(retryAfterSeconds: Int)
    }

    private let clock: any WallClock
    private let state: Mutex<(sessions: AdminSessionTable, throttle: SignInThrottle)>

    init(clock: any WallClock = SystemWallClock(), limits: AdminSessionTable.Limits = .init(), throttle: SignInThrottle.Limits = .init()) {
        self.clock = clock
        state = Mutex((AdminSessionTable(limits: limits), SignInThrottle(limits: throttle)))
    }

    var limits: AdminSessionTable.Limits { state.withLock { $0.sessions.limits } }

    enum TokenCheck: Equatable {
        case right
        case wrong
        case throttled(retryAfterSeconds: Int)
    }

    /// A token presented from `address` (to sign in, or as `Authorization: Bearer` on the API): `check` says
    /// whether it is right, and is not called while `address` is throttled. Wrong ones count towards the throttle.
    func checkToken(address: String, check: () -> Bool) -> TokenCheck {
        let now = clock.nowMicros()
        return state.withLock { state in Self.checkToken(&state.throttle, address: address, now: now, check: check) }
    }

    private static func checkToken(_ throttle: inout SignInThrottle, address: String, now: Int64, check: () -> Bool) -> TokenCheck {
        if case .throttled(let seconds) = throttle.verdict(address: address, now: now) { return .throttled(retryAfterSeconds: seconds) }
        guard check() else {
            throttle.failed(address: address, now: now)
            return .wrong
        }
        throttle.succeeded(address: address)
        return .right
    }

    /// `check` says whether the token is right; it is not called while `address` is throttled.
    func signIn(address: String, check: () -> Bool) -> SignIn {
        let now = clock.nowMicros()
        return state.withLock { state in
            switch Self.checkToken(&state.throttle, address: address, now: now, check: check) {
            case .throttled(let seconds): return .throttled(retryAfterSeconds: seconds)
            case .wrong: return .wrongToken
            case .right:
                var generator = SystemRandomNumberGenerator()
                let secret = AdminSessionTable.newSecret(using: &generator)
                state.sessions.open(secret: secret, now: now)
                return .signedIn(secret: secret)
            }
        }
    }

    func isSignedIn(secret: String) -> Bool {
        let now = clock.nowMicros()
        return state.withLock { $0.sessions.use(secret: secret, now: now) }
    }

    @discardableResult
    func signOut(secret: String) -> Bool {
        state.withLock { $0.sessions.close(secret: secret) }
    }
}
