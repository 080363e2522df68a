import Synchronization
import ToolgateCore

/// The sidecar's `SessionRegistry`, shared by every request under one lock.
final class SessionTable: Sendable {
    private let registry: Mutex<SessionRegistry>
    private let clock: any WallClock

    init(registry: SessionRegistry = SessionRegistry(), clock: any WallClock = SystemWallClock()) {
        self.registry = Mutex(registry)
        self.clock = clock
    }

    func issued(grant: String, session: String) {
        let now = clock.nowMicros()
        registry.withLock { $0.issued(grant: grant, session: session, now: now) }
    }

    func isSession(grant: String, session: String) -> Bool {
        let now = clock.nowMicros()
        return registry.withLock { $0.isSession(grant: grant, session: session, now: now) }
    }

    func ended(grant: String, session: String) {
        registry.withLock { $0.ended(grant: grant, session: session) }
    }
}
