/// `token_bucket`: the generic cell rate algorithm, burst `max`, rate `max/window`, O(1) state.
///
/// With emission interval `T = window / max`, a call of `cost` is admitted iff
/// `max(TAT, now) + cost·T − now ≤ window`. `T` is rarely a whole number of microseconds, so the
/// theoretical arrival time is kept exactly, as whole microseconds plus a fraction in units of `1/max` µs.
/// Every intermediate value stays below 2^53, so the Lua script's doubles compute the same answers.
public struct GCRABucket: Sendable {
    /// Theoretical arrival time, with its fraction over `denominator`.
    public private(set) var tat = GCRATime(whole: 0, frac: 0)
    public private(set) var denominator: Int64 = 1
    /// When the bucket last started from empty (its TAT was in the past): nothing before that can be refunded.
    public private(set) var since: Int64 = .min
    /// The latest consumption.
    public private(set) var last: Int64 = .min
    /// Everything refunded since `since`, so a later refund can bound what the earlier ones changed.
    public private(set) var refunded = GCRATime(whole: 0, frac: 0)

    public init() {}

    /// `cost · window / max` in µs, as whole µs and a remainder over `max`.
    public static func increment(cost: Int, windowSeconds: Int, max: Int) -> GCRATime {
        // Two steps keep every product below 2^53 (max·window_s < 2^53 and max < 2^31 are validated).
        let a = Int64(cost) * Int64(windowSeconds)
        let m = Int64(max)
        let (q1, r1) = a.quotientAndRemainder(dividingBy: m)
        let (q2, r2) = (r1 * 1_000_000).quotientAndRemainder(dividingBy: m)
        return GCRATime(whole: q1 * 1_000_000 + q2, frac: r2)
    }

    /// `max(TAT, now)`.
    private func start(now: Int64) -> GCRATime {
        tat > GCRATime(whole: now, frac: 0) ? tat : GCRATime(whole: now, frac: 0)
    }

    private mutating func normalize(max: Int, now: Int64) {
        let m = Int64(max)
        guard denominator != m else { return }
        // The limit's max changed: round the old fraction up, which never admits more than before. Earlier
        // receipts were in the old units, so they refund nothing from here on.
        tat = GCRATime(whole: tat.whole + (tat.frac > 0 ? 1 : 0), frac: 0)
        denominator = m
        since = now
        refunded = GCRATime(whole: 0, frac: 0)
    }

    public mutating func check(now: Int64, windowSeconds: Int, max: Int, cost: Int) -> LimitResult {
        normalize(max: max, now: now)
        let m = Int64(max)
        let windowMicros = Int64(windowSeconds) * 1_000_000
        let start = start(now: now)
        let new = start.adding(Self.increment(cost: cost, windowSeconds: windowSeconds, max: max), over: m)
        let ahead = new.whole - now
        if ahead < windowMicros || (ahead == windowMicros && new.frac == 0) {
            return LimitResult(
                passed: true, remaining: Self.remaining(ahead: ahead, frac: new.frac, windowMicros: windowMicros, max: max),
                retryAfterMicros: 0)
        }
        let retry = new.whole + (new.frac > 0 ? 1 : 0) - windowMicros - now
        return LimitResult(
            passed: false,
            remaining: Self.remaining(ahead: start.whole - now, frac: start.frac, windowMicros: windowMicros, max: max),
            retryAfterMicros: retry)
    }

    /// Call only after `check` passed for the same arguments.
    public mutating func consume(now: Int64, windowSeconds: Int, max: Int, cost: Int) -> GCRAReceipt {
        normalize(max: max, now: now)
        let start = start(now: now)
        if start.whole == now, start.frac == 0 {
            // Empty: a new epoch. What happened before cannot be refunded into it.
            since = now
            refunded = GCRATime(whole: 0, frac: 0)
        }
        tat = start.adding(Self.increment(cost: cost, windowSeconds: windowSeconds, max: max), over: denominator)
        last = now
        return GCRAReceipt(tatAfter: tat, refundedBefore: refunded)
    }

    /// Lowers the TAT by what the call consumed, but never below what it would be had the call never
    /// happened while every later admitted call still did. In that run each later call at `t` finds the
    /// TAT lower by `min(increment, TAT_before(t) − t)`; TAT only grows except by refunds, so
    /// `TAT_after − (refunds since) − last` bounds every such slack from below, and the refund gives back
    /// `min(increment, that bound)`, or nothing once the bucket ran empty since the call.
    /// Returns what was given back.
    @discardableResult
    public mutating func refund(_ receipt: GCRAReceipt, at decided: Int64, windowSeconds: Int, max: Int, cost: Int) -> GCRATime {
        let zero = GCRATime(whole: 0, frac: 0)
        let m = Int64(max)
        guard denominator == m, since <= decided, last >= decided, refunded >= receipt.refundedBefore else { return zero }
        let refundedSince = refunded.subtracting(receipt.refundedBefore, over: m)
        let bound = receipt.tatAfter.subtracting(refundedSince, over: m).subtracting(GCRATime(whole: last, frac: 0), over: m)
        let increment = Self.increment(cost: cost, windowSeconds: windowSeconds, max: max)
        let back = Swift.min(increment, bound)
        guard back > zero else { return zero }
        tat = tat.subtracting(back, over: m)
        refunded = refunded.adding(back, over: m)
        return back
    }

    /// From this instant the bucket is forgotten (it is full again by then, the same as no state at all): the
    /// instant its Redis key, set to `PEXPIREAT floor(TAT/1000) + 1`, is gone (Redis expires a key once its
    /// millisecond clock is past that), so both stores start a new life of the counter together.
    public var expiresAt: Int64 {
        let (q, r) = tat.whole.quotientAndRemainder(dividingBy: 1_000)
        return ((r < 0 ? q - 1 : q) + 2) * 1_000
    }

    /// Cost-1 calls that would still pass now: `floor((window − ahead) / T)`.
    private static func remaining(ahead: Int64, frac: Int64, windowMicros: Int64, max: Int) -> Int {
        let aheadExact = Double(Swift.max(ahead, 0)) + Double(frac) / Double(max)
        let value = ((Double(windowMicros) - aheadExact) * Double(max) / Double(windowMicros)).rounded(.down)
        return Swift.min(Swift.max(Int(value), 0), max)
    }
}

/// An exact instant or duration: whole microseconds plus `frac` over the bucket's `max` (0 ≤ frac < max).
public struct GCRATime: Sendable, Equatable, Comparable {
    public let whole: Int64
    public let frac: Int64

    public init(whole: Int64, frac: Int64) {
        self.whole = whole
        self.frac = frac
    }

    public static func < (a: GCRATime, b: GCRATime) -> Bool {
        a.whole < b.whole || (a.whole == b.whole && a.frac < b.frac)
    }

    func adding(_ other: GCRATime, over m: Int64) -> GCRATime {
        var w = whole + other.whole
        var f = frac + other.frac
        if f >= m {
            f -= m
            w += 1
        }
        return GCRATime(whole: w, frac: f)
    }

    func subtracting(_ other: GCRATime, over m: Int64) -> GCRATime {
        var w = whole - other.whole
        var f = frac - other.frac
        if f < 0 {
            f += m
            w -= 1
        }
        return GCRATime(whole: w, frac: f)
    }
}
