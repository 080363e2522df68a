import Synchronization

/// Lets one log line through per interval and counts the rest, so an outage that refuses every call
/// writes a line a second, not a line a call.
public final class LogThrottle: Sendable {
    private let interval: Duration
    private let state = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))

    public init(interval: Duration = .seconds(1)) { self.interval = interval }

    /// Nil when this occurrence should stay quiet; otherwise how many were suppressed since the last one logged.
    public func admit(now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            if let last = state.last, now - last < interval {
                state.suppressed += 1
                return nil
            }
            let suppressed = state.suppressed
            state = (now, 0)
            return suppressed
        }
    }
}
