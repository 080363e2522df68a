/// The `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi rate-limit headers draft for a call's tightest
/// limit (DESIGN.md section 3), so an agent can pace itself: `"<counter>";q=<max>;w=<window seconds>` and
/// `"<counter>";r=<remaining>;t=<seconds until the quota is whole again>`.
public struct RateLimitHeaders: Sendable, Equatable {
    public let policy: String
    public let state: String

    /// The enforced limit with the least left (on a tie, the one that takes longer to come back); nil without one.
    ///
    /// `t`: for a refused limit, its retry-after; a fixed window, the seconds to the window's end; a token bucket,
    /// the seconds until it is full again (from the receipt); a sliding window, its length (every call in it has
    /// left by then; the sidecar does not see the log to say sooner).
    public static func tightest(charges: [LimitCharge], outcome: LimitOutcome) -> RateLimitHeaders? {
        var best: (charge: LimitCharge, remaining: Int, reset: Int)?
        let now = outcome.decidedAtMicros
        for (charge, result) in zip(charges, outcome.results) where !charge.shadow {
            let reset: Int
            if !result.passed {
                reset = seconds(result.retryAfterMicros)
            } else {
                switch charge.algorithm {
                case .fixed:
                    let window = charge.window.micros
                    let (q, r) = now.quotientAndRemainder(dividingBy: window)
                    let start = (r < 0 ? q - 1 : q) * window
                    reset = seconds(start + window - now)
                case .tokenBucket:
                    let consumed = outcome.receipt?.items.first { $0.key == charge.key }
                    if case .tokenBucket(let gcra)? = consumed?.detail {
                        reset = seconds(gcra.tatAfter.whole - now + (gcra.tatAfter.frac > 0 ? 1 : 0))
                    } else {
                        reset = charge.window.seconds
                    }
                case .sliding:
                    reset = charge.window.seconds
                }
            }
            if best == nil || result.remaining < best!.remaining || (result.remaining == best!.remaining && reset > best!.reset) {
                best = (charge, result.remaining, reset)
            }
        }
        guard let (charge, remaining, reset) = best else { return nil }
        let name = quoted(charge.counter)
        return RateLimitHeaders(
            policy: "\(name);q=\(charge.max);w=\(charge.window.seconds)",
            state: "\(name);r=\(Swift.max(0, remaining));t=\(Swift.max(0, reset))")
    }

    /// Whole seconds, rounded up.
    private static func seconds(_ micros: Int64) -> Int {
        micros <= 0 ? 0 : Int((micros + 999_999) / 1_000_000)
    }

    /// A structured-field string: printable ASCII with `"` and `\` escaped; anything else becomes `?`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"", "\\": out += "\\" + String(scalar)
            case " "..."~": out.unicodeScalars.append(scalar)
            default: out += "?"
            }
        }
        return out + "\""
    }
}
