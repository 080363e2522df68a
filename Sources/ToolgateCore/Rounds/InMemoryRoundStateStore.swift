import Synchronization

/// Relayed states for a sidecar without Redis, on an injected clock. Every state lives equally long, so insertion
/// order is expiry order: expired entries leave from the front of a queue, and beyond `capacity` the oldest
/// leaves early (its follow-up is then charged, the safe side).
public final class InMemoryRoundStateStore: RoundStateStore {
    private struct Entry {
        let key: String
        let expiresAt: Int64
    }

    private struct State {
        var expiries: [String: Int64] = [:]
        /// Entries in insertion order from `head` on; the consumed prefix is dropped once it is half the array.
        var order: [Entry] = []
        var head = 0

        var queued: Int { order.count - head }
        var first: Entry? { head < order.count ? order[head] : nil }

        mutating func dropFirst() {
            let entry = order[head]
            head += 1
            // A state remembered again later has a later expiry: only its own entry removes it.
            if expiries[entry.key] == entry.expiresAt { expiries[entry.key] = nil }
            if head >= 1024, head * 2 >= order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    private let clock: any WallClock
    private let capacity: Int
    private let state = Mutex(State())

    public init(clock: any WallClock, capacity: Int = 100_000) {
        self.clock = clock
        self.capacity = max(1, capacity)
    }

    public func remember(_ binding: RoundBinding, ttlSeconds: Int) async throws(LimitStoreError) {
        rememberNow(binding, ttlSeconds: ttlSeconds)
    }

    public func take(_ binding: RoundBinding) async throws(LimitStoreError) -> Bool {
        takeNow(binding)
    }

    public func rememberNow(_ binding: RoundBinding, ttlSeconds: Int) {
        let now = clock.nowMicros()
        let expiresAt = now + Int64(ttlSeconds) * 1_000_000
        state.withLock { state in
            Self.prune(&state, now: now)
            while state.queued >= capacity { state.dropFirst() }
            state.expiries[binding.key] = expiresAt
            state.order.append(Entry(key: binding.key, expiresAt: expiresAt))
        }
    }

    public func takeNow(_ binding: RoundBinding) -> Bool {
        let now = clock.nowMicros()
        return state.withLock { state in
            Self.prune(&state, now: now)
            return state.expiries.removeValue(forKey: binding.key) != nil
        }
    }

    /// States held right now, for memory-bound tests.
    public var count: Int { state.withLock { $0.expiries.count } }

    /// Queue entries (taken states leave the queue only when they would have expired), for memory-bound tests.
    public var queued: Int { state.withLock { $0.queued } }

    private static func prune(_ state: inout State, now: Int64) {
        while let first = state.first, first.expiresAt <= now { state.dropFirst() }
    }
}
