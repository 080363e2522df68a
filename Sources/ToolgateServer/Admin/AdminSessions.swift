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

    /// `check` says whether the token is right; it is not called while `address` is throttled.
    func signIn(address: String, check: () -> Bool) -> SignIn {
        let now = clock.nowMicros()
        return state.withLock { state in
            if case .throttled(let seconds) = state.throttle.verdict(address: address, now: now) {
                return .throttled(retryAfterSeconds: seconds)
            }
            guard check() else {
                state.throttle.failed(address: address, now: now)
                return .wrongToken
            }
            state.throttle.succeeded(address: address)
            var generator = SystemRandomNumberGenerator()
            let secret = AdminSessionTable.newSecret(using: &generator)
            state.sessions.open(secret: secret, now: now)
            return .signedIn(secret: secret)
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
