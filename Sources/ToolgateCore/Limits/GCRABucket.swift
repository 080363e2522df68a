/// `token_bucket`: the generic cell rate algorithm, burst `max`, rate `max/window`, O(1) state.
///
/// With emission interval `T = window / max`, a call of `cost` is admitted iff
/// `max(TAT, now) + cost·T − now ≤ window`. `T` is rarely a whole number of microseconds, so the
/// theoretical arrival time is kept exactly, as whole microseconds plus a fraction in units of `1/max` µs.
/// Every intermediate value stays below 2^53, so the Lua script's doubles compute the same answers.
public struct GCRABucket: Sendable {
    /// Theoretical arrival time: `tat + frac/denominator` µs.
    public private(set) var tat: Int64 = 0
    public private(set) var frac: Int64 = 0
    public private(set) var denominator: Int64 = 1

    public init() {}

    /// `cost · window / max` in µs, as whole µs and a remainder over `max`.
    public struct Increment: Sendable, Equatable {
        public let whole: Int64
        public let frac: Int64

        public init(cost: Int, windowSeconds: Int, max: Int) {
            // Two steps keep every product below 2^53 (max·window_s < 2^53 and max < 2^31 are validated).
            let a = Int64(cost) * Int64(windowSeconds)
            let m = Int64(max)
            let (q1, r1) = a.quotientAndRemainder(dividingBy: m)
            let (q2, r2) = (r1 * 1_000_000).quotientAndRemainder(dividingBy: m)
            whole = q1 * 1_000_000 + q2
            frac = r2
        }
    }

    /// `max(TAT, now)`.
    private func start(now: Int64) -> (Int64, Int64) {
        (tat > now || (tat == now && frac > 0)) ? (tat, frac) : (now, 0)
    }

    private mutating func normalize(max: Int) {
        let m = Int64(max)
        guard denominator != m else { return }
        // The limit's max changed: round the old fraction up, which never admits more than before.
        if frac > 0 { tat += 1 }
        frac = 0
        denominator = m
    }

    public mutating func check(now: Int64, windowSeconds: Int, max: Int, cost: Int) -> LimitResult {
        normalize(max: max)
        let windowMicros = Int64(windowSeconds) * 1_000_000
        let inc = Increment(cost: cost, windowSeconds: windowSeconds, max: max)
        let (startWhole, startFrac) = start(now: now)
        let (newWhole, newFrac) = Self.add(startWhole, startFrac, inc, max: Int64(max))
        let ahead = newWhole - now
        if ahead < windowMicros || (ahead == windowMicros && newFrac == 0) {
            return LimitResult(
                passed: true, remaining: Self.remaining(ahead: ahead, frac: newFrac, windowMicros: windowMicros, max: max),
                retryAfterMicros: 0)
        }
        let retry = newWhole + (newFrac > 0 ? 1 : 0) - windowMicros - now
        return LimitResult(
            passed: false,
            remaining: Self.remaining(ahead: startWhole - now, frac: startFrac, windowMicros: windowMicros, max: max),
            retryAfterMicros: retry)
    }

    /// Call only after `check` passed for the same arguments.
    public mutating func consume(now: Int64, windowSeconds: Int, max: Int, cost: Int) -> Increment {
        normalize(max: max)
        let inc = Increment(cost: cost, windowSeconds: windowSeconds, max: max)
        let (startWhole, startFrac) = start(now: now)
        (tat, frac) = Self.add(startWhole, startFrac, inc, max: Int64(max))
        return inc
    }

    public mutating func refund(_ inc: Increment, max: Int) {
        tat -= inc.whole
        guard Int64(max) == denominator else { return }
        frac -= inc.frac
        if frac < 0 {
            frac += denominator
            tat -= 1
        }
    }

    /// After this instant the bucket is full again, the same as no state at all.
    public var expiresAt: Int64 { tat + 1 }

    private static func add(_ whole: Int64, _ frac: Int64, _ inc: Increment, max: Int64) -> (Int64, Int64) {
        var w = whole + inc.whole
        var f = frac + inc.frac
        if f >= max {
            f -= max
            w += 1
        }
        return (w, f)
    }

    /// Cost-1 calls that would still pass now: `floor((window − ahead) / T)`.
    private static func remaining(ahead: Int64, frac: Int64, windowMicros: Int64, max: Int) -> Int {
        let aheadExact = Double(Swift.max(ahead, 0)) + Double(frac) / Double(max)
        let value = ((Double(windowMicros) - aheadExact) * Double(max) / Double(windowMicros)).rounded(.down)
        return Swift.min(Swift.max(Int(value), 0), max)
    }
}
