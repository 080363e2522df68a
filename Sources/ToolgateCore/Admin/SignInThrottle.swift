/// Failed admin sign-ins, per client address (DESIGN.md section 6): past `maxFailures` in a window, that address's
/// sign-ins are refused, right token or not, until the window ends, so guessing the token gets a few tries a minute
/// and a refusal never tells a right guess from a wrong one. A ceiling over all addresses together holds an agent
/// that can choose its source address (all of 127.0.0.0/8 is loopback). Bounded: at most `maxAddresses` entries.
///
/// A plain value driven by the instants it is given (microseconds of any clock); `AdminSessions` holds it.
public struct SignInThrottle: Sendable {
    public struct Limits: Sendable, Equatable {
        public var maxFailures: Int
        public var windowMicros: Int64
        /// Failures of every address together in one window.
        public var maxFailuresOverall: Int
        public var maxAddresses: Int

        public init(maxFailures: Int = 5, windowMicros: Int64 = 60 * 1_000_000, maxFailuresOverall: Int = 50, maxAddresses: Int = 4_096) {
            precondition(maxFailures > 0 && windowMicros > 0 && maxFailuresOverall >= maxFailures && maxAddresses > 0)
            self.maxFailures = maxFailures
            self.windowMicros = windowMicros
            self.maxFailuresOverall = maxFailuresOverall
            self.maxAddresses = maxAddresses
        }
    }

    struct Window: Sendable {
        var startMicros: Int64
        var failures: Int
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        /// Refused without looking at the token; try again after this many whole seconds (at least 1).
        case throttled(retryAfterSeconds: Int)
    }

    public let limits: Limits
    private var windows: [String: Window] = [:]
    private var overall: Window?

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Addresses tracked now.
    public var trackedAddresses: Int { windows.count }

    /// Whether a sign-in from `address` may be checked at all.
    public func verdict(address: String, now: Int64) -> Verdict {
        var until: Int64?
        if let window = windows[address], now - window.startMicros < limits.windowMicros, window.failures >= limits.maxFailures {
            until = window.startMicros + limits.windowMicros
        }
        if let overall, now - overall.startMicros < limits.windowMicros, overall.failures >= limits.maxFailuresOverall {
            until = max(until ?? .min, overall.startMicros + limits.windowMicros)
        }
        guard let until else { return .allowed }
        let micros = until - now
        return .throttled(retryAfterSeconds: max(1, Int((micros + 999_999) / 1_000_000)))
    }

    /// A wrong token from `address`.
    public mutating func failed(address: String, now: Int64) {
        var all = overall.flatMap { now - $0.startMicros < limits.windowMicros ? $0 : nil } ?? Window(startMicros: now, failures: 0)
        all.failures += 1
        overall = all
        if var window = windows[address], now - window.startMicros < limits.windowMicros {
            window.failures += 1
            windows[address] = window
            return
        }
        if windows[address] == nil, windows.count >= limits.maxAddresses {
            windows = windows.filter { now - $0.value.startMicros < limits.windowMicros }
            if windows.count >= limits.maxAddresses, let oldest = windows.min(by: { $0.value.startMicros < $1.value.startMicros }) {
                windows[oldest.key] = nil
            }
        }
        windows[address] = Window(startMicros: now, failures: 1)
    }

    /// A right token from `address`: its failures are forgotten.
    public mutating func succeeded(address: String) {
        windows[address] = nil
    }
}
