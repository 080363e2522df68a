import Synchronization

/// The embedded store: every algorithm in process memory, behind one lock.
///
/// Same semantics as the Redis store, with time from an injected wall clock. Idle counters and refund
/// records expire, so memory stays bounded by the keys active in the last two windows.
public final class InMemoryLimitStore<Clock: WallClock>: LimitStore {
    public let clock: Clock
    private let state = Mutex(State())
    /// How often, at most, a decision also sweeps expired keys.
    private let sweepIntervalMicros: Int64

    public init(clock: Clock, sweepIntervalMicros: Int64 = 1_000_000) {
        self.clock = clock
        self.sweepIntervalMicros = sweepIntervalMicros
    }

    public func acquire(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome {
        acquireNow(request)
    }

    @discardableResult
    public func refund(callID: String) async throws(LimitStoreError) -> Bool {
        refundNow(callID: callID)
    }

    /// The synchronous core of `acquire`, for callers (and tests) that are not async.
    public func acquireNow(_ request: LimitRequest) -> LimitOutcome {
        let now = clock.nowMicros()
        return state.withLock { state in
            state.sweepIfDue(now: now, interval: sweepIntervalMicros)
            var results: [LimitResult] = []
            results.reserveCapacity(request.charges.count)
            var admitted = true
            for charge in request.charges {
                let result = state.check(charge, now: now)
                if !result.passed && !charge.shadow { admitted = false }
                results.append(result)
            }
            guard admitted else {
                return LimitOutcome(admitted: false, results: results, decidedAtMicros: now)
            }
            var record = CallRecord()
            for (charge, result) in zip(request.charges, results) where result.passed && charge.cost > 0 {
                record.items.append(state.consume(charge, now: now, callID: request.callID))
                record.expiresAt = max(record.expiresAt, now + charge.window.micros)
            }
            if !record.items.isEmpty { state.calls[request.callID] = record }
            return LimitOutcome(admitted: true, results: results, decidedAtMicros: now)
        }
    }

    public func refundNow(callID: String) -> Bool {
        state.withLock { state in
            guard let record = state.calls.removeValue(forKey: callID) else { return false }
            for item in record.items { state.undo(item, callID: callID) }
            return true
        }
    }

    /// Keys held right now (counters plus refund records), for memory-bound tests and metrics.
    public var keyCount: Int {
        state.withLock { $0.sliding.count + $0.fixed.count + $0.buckets.count + $0.calls.count }
    }

    /// Drops everything that has expired, regardless of when the last sweep ran.
    public func sweep() {
        let now = clock.nowMicros()
        state.withLock { $0.sweep(now: now) }
    }
}

/// What one admitted call consumed, so a refund can undo exactly that.
private struct CallRecord {
    enum Item {
        case sliding(key: String)
        case fixed(key: String, windowIndex: Int64, cost: Int)
        case bucket(key: String, increment: GCRABucket.Increment, max: Int)
    }

    var items: [Item] = []
    var expiresAt: Int64 = .min
}

private struct Expiring<Value> {
    var value: Value
    var expiresAt: Int64
}

private struct State {
    var sliding: [String: Expiring<SlidingLog>] = [:]
    var fixed: [String: Expiring<FixedWindowCounter>] = [:]
    var buckets: [String: Expiring<GCRABucket>] = [:]
    var calls: [String: CallRecord] = [:]
    var lastSweep: Int64 = .min

    mutating func check(_ charge: LimitCharge, now: Int64) -> LimitResult {
        let windowMicros = charge.window.micros
        switch charge.algorithm {
        case .sliding:
            guard sliding[charge.key] != nil else {
                return SlidingLog().check(now: now, windowMicros: windowMicros, max: charge.max, cost: charge.cost)
            }
            sliding[charge.key]!.value.prune(now: now, windowMicros: windowMicros)
            return sliding[charge.key]!.value.check(
                now: now, windowMicros: windowMicros, max: charge.max, cost: charge.cost)
        case .fixed:
            let counter = fixed[charge.key]?.value ?? FixedWindowCounter()
            return counter.check(now: now, windowMicros: windowMicros, max: charge.max, cost: charge.cost)
        case .tokenBucket:
            var bucket = buckets[charge.key]?.value ?? GCRABucket()
            return bucket.check(now: now, windowSeconds: charge.window.seconds, max: charge.max, cost: charge.cost)
        }
    }

    mutating func consume(_ charge: LimitCharge, now: Int64, callID: String) -> CallRecord.Item {
        let windowMicros = charge.window.micros
        switch charge.algorithm {
        case .sliding:
            sliding[charge.key, default: Expiring(value: SlidingLog(), expiresAt: 0)].value.consume(
                now: now, cost: charge.cost, callID: callID)
            sliding[charge.key]!.expiresAt = sliding[charge.key]!.value.expiresAt(windowMicros: windowMicros) ?? now
            return .sliding(key: charge.key)
        case .fixed:
            var entry = fixed[charge.key] ?? Expiring(value: FixedWindowCounter(), expiresAt: 0)
            let index = entry.value.consume(now: now, windowMicros: windowMicros, cost: charge.cost)
            entry.expiresAt = entry.value.expiresAt(windowMicros: windowMicros)
            fixed[charge.key] = entry
            return .fixed(key: charge.key, windowIndex: index, cost: charge.cost)
        case .tokenBucket:
            var entry = buckets[charge.key] ?? Expiring(value: GCRABucket(), expiresAt: 0)
            let increment = entry.value.consume(
                now: now, windowSeconds: charge.window.seconds, max: charge.max, cost: charge.cost)
            entry.expiresAt = entry.value.expiresAt
            buckets[charge.key] = entry
            return .bucket(key: charge.key, increment: increment, max: charge.max)
        }
    }

    mutating func undo(_ item: CallRecord.Item, callID: String) {
        switch item {
        case .sliding(let key):
            sliding[key]?.value.refund(callID: callID)
        case .fixed(let key, let windowIndex, let cost):
            fixed[key]?.value.refund(windowIndex: windowIndex, cost: cost)
        case .bucket(let key, let increment, let max):
            buckets[key]?.value.refund(increment, max: max)
        }
    }

    mutating func sweepIfDue(now: Int64, interval: Int64) {
        guard lastSweep == .min || now - lastSweep >= interval || now < lastSweep else { return }
        sweep(now: now)
    }

    mutating func sweep(now: Int64) {
        lastSweep = now
        sliding = sliding.filter { $0.value.expiresAt > now && !$0.value.value.isEmpty }
        fixed = fixed.filter { $0.value.expiresAt > now }
        buckets = buckets.filter { $0.value.expiresAt > now }
        calls = calls.filter { $0.value.expiresAt > now }
    }
}
