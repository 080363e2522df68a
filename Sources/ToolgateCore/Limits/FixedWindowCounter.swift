/// `fixed`: a counter per calendar-aligned UTC window.
///
/// Windows start at multiples of their length since the Unix epoch, so a `day` window starts at UTC
/// midnight. At most `max` per aligned window; up to twice `max` across an edge.
public struct FixedWindowCounter: Sendable {
    public private(set) var windowIndex: Int64
    public private(set) var count: Int

    public init() {
        windowIndex = .min
        count = 0
    }

    public static func windowIndex(now: Int64, windowMicros: Int64) -> Int64 {
        let (q, r) = now.quotientAndRemainder(dividingBy: windowMicros)
        return r < 0 ? q - 1 : q
    }

    public func check(now: Int64, windowMicros: Int64, max: Int, cost: Int) -> LimitResult {
        let index = Self.windowIndex(now: now, windowMicros: windowMicros)
        let used = index == windowIndex ? count : 0
        if used + cost <= max {
            return LimitResult(passed: true, remaining: max - used - cost, retryAfterMicros: 0)
        }
        let retry = (index + 1) * windowMicros - now
        return LimitResult(passed: false, remaining: max - used, retryAfterMicros: retry)
    }

    /// Returns the window index charged, which a refund needs.
    @discardableResult
    public mutating func consume(now: Int64, windowMicros: Int64, cost: Int) -> Int64 {
        let index = Self.windowIndex(now: now, windowMicros: windowMicros)
        if index != windowIndex {
            windowIndex = index
            count = 0
        }
        count += cost
        return index
    }

    /// Gives back `cost` if the charged window is still the current one; an old window is gone anyway.
    public mutating func refund(windowIndex index: Int64, cost: Int) {
        guard index == windowIndex else { return }
        count = Swift.max(0, count - cost)
    }

    /// The counter is kept for two windows, as on Redis: forgotten from the millisecond after
    /// `PEXPIREAT (index + 2) · window`, when Redis expires the key.
    public func expiresAt(windowMicros: Int64) -> Int64 {
        windowIndex == .min ? .min : (windowIndex + 2) * windowMicros + 1_000
    }
}
