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
            var record = CallRecord()
            for i in request.charges.indices where results[i].passed && request.charges[i].cost > 0 {
                let charge = request.charges[i]
                record.items.append(cells[i].consume(charge, now: now, callID: request.callID))
                record.expiresAt = max(record.expiresAt, now + charge.window.micros)
            }
            if !record.items.isEmpty { state.calls[request.callID] = record }
            return LimitOutcome(admitted: true, results: results, decidedAtMicros: now)
        }
    }

    public func refundNow(callID: String) -> Bool {
        state.withLock { state in
            guard let record = state.calls.removeValue(forKey: callID) else { return false }
            for item in record.items { item.cell.undo(item, callID: callID) }
            return true
        }
    }

    /// Keys held right now (counters plus refund records), for memory-bound tests and metrics.
    public var keyCount: Int {
        state.withLock { $0.counters.count + $0.calls.count }
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
        case sliding(cell: CounterCell)
        case fixed(cell: CounterCell, windowIndex: Int64, cost: Int)
        case bucket(cell: CounterCell, increment: GCRABucket.Increment, max: Int)

        var cell: CounterCell {
            switch self {
            case .sliding(let cell), .fixed(let cell, _, _), .bucket(let cell, _, _): cell
            }
        }
    }

    var items: [Item] = []
    var expiresAt: Int64 = .min
}

/// One counter's state. A class so a decision looks its key up once and then mutates in place;
/// only ever touched under the store's lock. Only the field of `kind` is used.
private final class CounterCell {
    let kind: LimitAlgorithm
    var sliding = SlidingLog()
    var fixed = FixedWindowCounter()
    var bucket = GCRABucket()
    var expiresAt: Int64

    init(kind: LimitAlgorithm, now: Int64) {
        self.kind = kind
        expiresAt = now
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

    func consume(_ charge: LimitCharge, now: Int64, callID: String) -> CallRecord.Item {
        let windowMicros = charge.window.micros
        switch kind {
        case .sliding:
            sliding.consume(now: now, cost: charge.cost, callID: callID)
            expiresAt = sliding.expiresAt(windowMicros: windowMicros) ?? now
            return .sliding(cell: self)
        case .fixed:
            let index = fixed.consume(now: now, windowMicros: windowMicros, cost: charge.cost)
            expiresAt = fixed.expiresAt(windowMicros: windowMicros)
            return .fixed(cell: self, windowIndex: index, cost: charge.cost)
        case .tokenBucket:
            let increment = bucket.consume(now: now, windowSeconds: charge.window.seconds, max: charge.max, cost: charge.cost)
            expiresAt = bucket.expiresAt
            return .bucket(cell: self, increment: increment, max: charge.max)
        }
    }

    func undo(_ item: CallRecord.Item, callID: String) {
        switch item {
        case .sliding: sliding.refund(callID: callID)
        case .fixed(_, let windowIndex, let cost): fixed.refund(windowIndex: windowIndex, cost: cost)
        case .bucket(_, let increment, let max): bucket.refund(increment, max: max)
        }
    }

    var isIdle: Bool { kind == .sliding && sliding.isEmpty }
}

private struct State {
    var counters: [String: CounterCell] = [:]
    var calls: [String: CallRecord] = [:]
    var lastSweep: Int64 = .min

    /// The charge's counter, created empty when absent or when the policy changed its algorithm.
    mutating func cell(for charge: LimitCharge, now: Int64) -> CounterCell {
        if let cell = counters[charge.key], cell.kind == charge.algorithm { return cell }
        let cell = CounterCell(kind: charge.algorithm, now: now)
        counters[charge.key] = cell
        return cell
    }

    mutating func sweepIfDue(now: Int64, interval: Int64) {
        guard lastSweep == .min || now - lastSweep >= interval || now < lastSweep else { return }
        sweep(now: now)
    }

    mutating func sweep(now: Int64) {
        lastSweep = now
        counters = counters.filter { $0.value.expiresAt > now && !$0.value.isIdle }
        calls = calls.filter { $0.value.expiresAt > now }
    }
}
