import Testing
@testable import ToolgateCore

/// The RateLimit fields for a call's tightest limit, from the charges and the store's outcome.
@Suite struct RateLimitHeadersTests {
    static func charge(_ counter: String, _ algorithm: LimitAlgorithm, window: Int, max: Int, shadow: Bool = false) -> LimitCharge {
        LimitCharge(
            key: "k:{global:_}:" + counter, counter: counter, rule: "t", scope: .global, window: Window(seconds: window, text: "\(window)s"),
            max: max, algorithm: algorithm, cost: 1, shadow: shadow)
    }

    @Test func theTightestLimitIsTheOneWithTheLeastLeft() {
        let now: Int64 = 1_700_000_010_000_000  // 30 s into a UTC minute (1_699_999_980 is a minute's start)
        let charges = [Self.charge("per_minute", .fixed, window: 60, max: 10), Self.charge("per_hour", .sliding, window: 3_600, max: 100)]
        let outcome = LimitOutcome(
            admitted: true,
            results: [LimitResult(passed: true, remaining: 3, retryAfterMicros: 0), LimitResult(passed: true, remaining: 40, retryAfterMicros: 0)],
            decidedAtMicros: now)
        let headers = RateLimitHeaders.tightest(charges: charges, outcome: outcome)
        #expect(headers == RateLimitHeaders(policy: #""per_minute";q=10;w=60"#, state: #""per_minute";r=3;t=30"#))
    }

    @Test func aRefusedLimitSaysItsRetryAndShadowLimitsAreLeftOut() {
        let charges = [Self.charge("real", .sliding, window: 60, max: 5), Self.charge("trial", .sliding, window: 60, max: 1, shadow: true)]
        let outcome = LimitOutcome(
            admitted: false,
            results: [LimitResult(passed: false, remaining: 0, retryAfterMicros: 12_300_000), LimitResult(passed: false, remaining: 0, retryAfterMicros: 59_000_000)],
            decidedAtMicros: 0)
        #expect(RateLimitHeaders.tightest(charges: charges, outcome: outcome)?.state == #""real";r=0;t=13"#)
        #expect(RateLimitHeaders.tightest(charges: [charges[1]], outcome: LimitOutcome(admitted: true, results: [outcome.results[1]], decidedAtMicros: 0)) == nil)
    }

    @Test func aTokenBucketResetsWhenItIsFullAgain() {
        let now: Int64 = 5_000_000
        let charge = Self.charge("bucket", .tokenBucket, window: 60, max: 6)
        let receipt = LimitReceipt(
            callID: "c", decidedAtMicros: now,
            items: [ConsumedLimit(
                key: charge.key, algorithm: .tokenBucket, windowSeconds: 60, max: 6, cost: 1, incarnation: "c",
                detail: .tokenBucket(GCRAReceipt(tatAfter: GCRATime(whole: now + 20_000_000, frac: 1), refundedBefore: GCRATime(whole: 0, frac: 0))))])
        let outcome = LimitOutcome(
            admitted: true, results: [LimitResult(passed: true, remaining: 4, retryAfterMicros: 0)], decidedAtMicros: now, receipt: receipt)
        #expect(RateLimitHeaders.tightest(charges: [charge], outcome: outcome)?.state == #""bucket";r=4;t=21"#)
    }

    @Test func counterNamesAreQuotedSafely() {
        #expect(RateLimitHeaders.quoted(#"a"b\c é"#) == #""a\"b\\c ?""#)
    }
}
