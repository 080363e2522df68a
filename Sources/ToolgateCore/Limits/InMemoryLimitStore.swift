import Synchronization

/// The embedded store: every algorithm in process memory, behind one lock.
///
/// Same semantics as the Redis store, with time from an injected wall clock. It keeps only counters (and,
/// for a sliding window, the entries the window must hold): what a call consumed travels in its receipt,
/// and a refund leaves a marker only as long as its longest window. Idle counters expire.
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
    public func refund(_ receipt: LimitReceipt) async throws(LimitStoreError) -> Bool {
        refundNow(receipt)
    }

    /// The synchronous core of `acquire`, for callers (and tests) that are not async.
    public func acquireNow(_ request: LimitRequest) -> LimitOutcome {
        let now = clock.nowMicros()
        return state.withLock { state in
            state.sweepIfDue(now: now, interval: sweepIntervalMicros)
            var results: [LimitResult] = []
            var cells: [CounterCell] = []
            results.reserveCapacity(request.charges.count)
            cells.reserveCapacity(request.charges.count)
            var admitted = true
            for charge in request.charges {
                let cell = state.cell(for: charge, now: now)
                let result = cell.check(charge, now: now)
                if !result.passed && !charge.shadow { admitted = false }
                results.append(result)
                cells.append(cell)
            }
            guard admitted else {
                return LimitOutcome(admitted: false, results: results, decidedAtMicros: now)
            }
            var items: [ConsumedLimit] = []
            for i in request.charges.indices where results[i].passed && request.charges[i].cost > 0 {
                let charge = request.charges[i]
                if cells[i].isFresh { state.counters[charge.key] = cells[i] }
                items.append(cells[i].consume(charge, now: now, callID: request.callID))
            }
            let receipt = items.isEmpty ? nil : LimitReceipt(callID: request.callID, decidedAtMicros: now, items: items)
            return LimitOutcome(admitted: true, results: results, decidedAtMicros: now, receipt: receipt)
        }
    }

    public func refundNow(_ receipt: LimitReceipt) -> Bool {
        let now = clock.nowMicros()
        return state.withLock { state in
            guard state.refunded[receipt.callID] == nil else { return false }
            state.refunded[receipt.callID] = now + Int64(receipt.longestWindowSeconds) * 1_000_000
            for item in receipt.items {
                guard let cell = state.counters[item.key], cell.incarnation == item.incarnation else { continue }
                cell.undo(item, receipt: receipt)
            }
            return true
        }
    }

    /// Counters and refund markers held right now, for memory-bound tests.
    public var keyCount: Int {
        state.withLock { $0.counters.count + $0.refunded.count }
    }

    /// Sliding-log entries held across all counters, for memory-bound tests.
    public var slidingEntryCount: Int {
        state.withLock { $0.counters.values.reduce(0) { $0 + $1.sliding.count } }
    }

    /// Drops everything that has expired, regardless of when the last sweep ran.
    public func sweep() {
        let now = clock.nowMicros()
        state.withLock { $0.sweep(now: now) }
    }
}

/// One counter's state. A class so a decision looks its key up once and then mutates in place;
/// only ever touched under the store's lock. Only the field of `kind` is used.
private final class CounterCell {
    let kind: LimitAlgorithm
    let windowSeconds: Int
    var sliding = SlidingLog()
    var fixed = FixedWindowCounter()
    var bucket = GCRABucket()
    var expiresAt: Int64
    /// Not stored yet: a denied call leaves nothing behind.
    var isFresh: Bool
    /// The call that created this life of the counter (see `ConsumedLimit.incarnation`).
    var incarnation = ""

    init(kind: LimitAlgorithm, windowSeconds: Int, now: Int64) {
        self.kind = kind
        self.windowSeconds = windowSeconds
        expiresAt = now
        isFresh = true
    }

    func check(_ charge: LimitCharge, now: Int64) -> LimitResult {
        let windowMicros = charge.window.micros
        switch kind {
        case .sliding:
            sliding.prune(now: now, windowMicros: windowMicros)
            return sliding.check(now: now, windowMicros: windowMicros, max: charge.max, cost: charge.cost)
        case .fixed:
            return fixed.check(now: now, windowMicros: windowMicros, max: charge.max, cost: charge.cost)
        case .tokenBucket:
            return bucket.check(now: now, windowSeconds: charge.window.seconds, max: charge.max, cost: charge.cost)
        }
    }

    func consume(_ charge: LimitCharge, now: Int64, callID: String) -> ConsumedLimit {
        // A sliding refund removes its own log entry, which only ever exists in the life that logged it.
        if isFresh, kind != .sliding { incarnation = callID }
        isFresh = false
        let windowMicros = charge.window.micros
        let detail: ConsumedLimit.Detail
        switch kind {
        case .sliding:
            sliding.consume(now: now, cost: charge.cost, callID: callID)
            expiresAt = sliding.expiresAt(windowMicros: windowMicros) ?? now
            detail = .sliding
        case .fixed:
            let index = fixed.consume(now: now, windowMicros: windowMicros, cost: charge.cost)
            expiresAt = fixed.expiresAt(windowMicros: windowMicros)
            detail = .fixed(windowIndex: index)
        case .tokenBucket:
            let receipt = bucket.consume(now: now, windowSeconds: charge.window.seconds, max: charge.max, cost: charge.cost)
            expiresAt = bucket.expiresAt
            detail = .tokenBucket(receipt)
        }
        return ConsumedLimit(
            key: charge.key, algorithm: kind, windowSeconds: windowSeconds, max: charge.max, cost: charge.cost,
            incarnation: incarnation, detail: detail)
    }

    func undo(_ item: ConsumedLimit, receipt: LimitReceipt) {
        switch item.detail {
        case .sliding:
            sliding.refund(callID: receipt.callID, at: receipt.decidedAtMicros)
        case .fixed(let windowIndex):
            fixed.refund(windowIndex: windowIndex, cost: item.cost)
        case .tokenBucket(let gcra):
            bucket.refund(gcra, at: receipt.decidedAtMicros, windowSeconds: item.windowSeconds, max: item.max, cost: item.cost)
        }
    }

    var isIdle: Bool { kind == .sliding && sliding.isEmpty }
}

private struct State {
    var counters: [String: CounterCell] = [:]
    /// Refund markers: call id → when the marker may go (its longest window has passed by then).
    var refunded: [String: Int64] = [:]
    var lastSweep: Int64 = .min

    /// The charge's counter, or a fresh one (not yet stored) when absent, expired (as its Redis key would be),
    /// or when the policy changed its algorithm or window: such a counter starts over, as on Redis.
    func cell(for charge: LimitCharge, now: Int64) -> CounterCell {
        if let cell = counters[charge.key], cell.kind == charge.algorithm, cell.windowSeconds == charge.window.seconds,
            cell.kind == .sliding || cell.expiresAt > now
        {
            return cell
        }
        return CounterCell(kind: charge.algorithm, windowSeconds: charge.window.seconds, now: now)
    }

    mutating func sweepIfDue(now: Int64, interval: Int64) {
        guard lastSweep == .min || now - lastSweep >= interval || now < lastSweep else { return }
        sweep(now: now)
    }

    mutating func sweep(now: Int64) {
        lastSweep = now
        counters = counters.filter { $0.value.expiresAt > now && !$0.value.isIdle }
        refunded = refunded.filter { $0.value > now }
    }
}
