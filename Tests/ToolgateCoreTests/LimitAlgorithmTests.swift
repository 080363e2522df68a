import Testing
@testable import ToolgateCore

private let second: Int64 = 1_000_000
private let t0: Int64 = 1_764_000_000 * second  // an aligned instant

@Suite struct SlidingLogTests {
    @Test func admitsUpToMaxThenGivesTheExactRetry() {
        var log = SlidingLog()
        let w = 10 * second
        for i in 0..<3 {
            let now = t0 + Int64(i) * second
            log.prune(now: now, windowMicros: w)
            #expect(log.check(now: now, windowMicros: w, max: 3, cost: 1).passed)
            log.consume(now: now, cost: 1, callID: "c\(i)")
        }
        let now = t0 + 5 * second
        let denied = log.check(now: now, windowMicros: w, max: 3, cost: 1)
        #expect(!denied.passed)
        #expect(denied.remaining == 0)
        // The first entry (t0) leaves at t0 + 10 s: the interval is (now − window, now].
        #expect(denied.retryAfterMicros == 5 * second)
        log.prune(now: t0 + w - 1, windowMicros: w)
        #expect(!log.check(now: t0 + w - 1, windowMicros: w, max: 3, cost: 1).passed)
        log.prune(now: t0 + w, windowMicros: w)
        #expect(log.check(now: t0 + w, windowMicros: w, max: 3, cost: 1).passed)
    }

    @Test func retryAccountsForCost() {
        var log = SlidingLog()
        let w = 10 * second
        log.consume(now: t0, cost: 2, callID: "a")
        log.consume(now: t0 + second, cost: 2, callID: "b")
        log.consume(now: t0 + 2 * second, cost: 1, callID: "c")
        // max 5 is full; a cost-3 call needs a (2) and b (2) gone: at t0 + 1 s + 10 s.
        let r = log.check(now: t0 + 3 * second, windowMicros: w, max: 5, cost: 3)
        #expect(!r.passed)
        #expect(r.retryAfterMicros == 8 * second)
    }

    @Test func refundRemovesTheCallsEntryOnce() {
        var log = SlidingLog()
        log.consume(now: t0, cost: 2, callID: "a")
        log.consume(now: t0, cost: 1, callID: "b")
        let wrongTime = log.refund(callID: "a", at: t0 + 1)
        #expect(!wrongTime)
        let first = log.refund(callID: "a", at: t0)
        let second = log.refund(callID: "a", at: t0)
        #expect(first)
        #expect(!second)
        #expect(log.total == 1)
    }

    @Test func clockSteppingBackKeepsTheLogOrdered() {
        var log = SlidingLog()
        let w = 10 * second
        log.consume(now: t0 + 5 * second, cost: 1, callID: "late")
        log.consume(now: t0, cost: 1, callID: "early")
        log.prune(now: t0 + 11 * second, windowMicros: w)
        #expect(log.total == 1)
    }
}

@Suite struct FixedWindowCounterTests {
    @Test func windowsAlignToTheEpoch() {
        let w = 60 * second
        var counter = FixedWindowCounter()
        let start = t0 + 30 * second  // t0 is a multiple of 60 s
        counter.consume(now: start, windowMicros: w, cost: 2)
        let r = counter.check(now: start + 10 * second, windowMicros: w, max: 2, cost: 1)
        #expect(!r.passed)
        #expect(r.retryAfterMicros == 20 * second)
        #expect(counter.check(now: t0 + w, windowMicros: w, max: 2, cost: 1).passed)
    }

    @Test func dayWindowsStartAtUTCMidnight() {
        let day: Int64 = 86_400 * second
        let midnight: Int64 = 1_764_028_800 * second  // 2025-11-25T00:00:00Z
        #expect(FixedWindowCounter.windowIndex(now: midnight - 1, windowMicros: day) + 1
            == FixedWindowCounter.windowIndex(now: midnight, windowMicros: day))
    }

    @Test func refundOnlyTouchesTheWindowItCharged() {
        let w = 60 * second
        var counter = FixedWindowCounter()
        let index = counter.consume(now: t0, windowMicros: w, cost: 1)
        counter.refund(windowIndex: index, cost: 1)
        #expect(counter.count == 0)
        let old = counter.consume(now: t0, windowMicros: w, cost: 1)
        counter.consume(now: t0 + w, windowMicros: w, cost: 1)
        counter.refund(windowIndex: old, cost: 1)
        #expect(counter.count == 1)
    }
}

@Suite struct GCRABucketTests {
    @Test func burstOfMaxThenOneEveryEmissionInterval() {
        var bucket = GCRABucket()
        // max 4 per 2 s: T = 0.5 s.
        for _ in 0..<4 {
            #expect(bucket.check(now: t0, windowSeconds: 2, max: 4, cost: 1).passed)
            _ = bucket.consume(now: t0, windowSeconds: 2, max: 4, cost: 1)
        }
        let r = bucket.check(now: t0, windowSeconds: 2, max: 4, cost: 1)
        #expect(!r.passed)
        #expect(r.retryAfterMicros == second / 2)
        #expect(!bucket.check(now: t0 + second / 2 - 1, windowSeconds: 2, max: 4, cost: 1).passed)
        #expect(bucket.check(now: t0 + second / 2, windowSeconds: 2, max: 4, cost: 1).passed)
    }

    @Test func fractionalEmissionIntervalsStayExact() {
        var bucket = GCRABucket()
        // max 3 per 1 s: T = 333333.33… µs. Three at once must pass, a fourth must not.
        for _ in 0..<3 {
            #expect(bucket.check(now: t0, windowSeconds: 1, max: 3, cost: 1).passed)
            _ = bucket.consume(now: t0, windowSeconds: 1, max: 3, cost: 1)
        }
        let r = bucket.check(now: t0, windowSeconds: 1, max: 3, cost: 1)
        #expect(!r.passed)
        // TAT = t0 + 1 s; the next fits when TAT + T − now ≤ 1 s: now ≥ t0 + 333333.33… µs.
        #expect(r.retryAfterMicros == 333_334)
        #expect(bucket.check(now: t0 + 333_334, windowSeconds: 1, max: 3, cost: 1).passed)
        #expect(!bucket.check(now: t0 + 333_333, windowSeconds: 1, max: 3, cost: 1).passed)
    }

    @Test func aRefundAtOnceGivesTheIncrementBack() {
        var bucket = GCRABucket()
        var receipts: [GCRAReceipt] = []
        for _ in 0..<3 { receipts.append(bucket.consume(now: t0, windowSeconds: 1, max: 3, cost: 1)) }
        let back = bucket.refund(receipts[2], at: t0, windowSeconds: 1, max: 3, cost: 1)
        #expect(back == GCRABucket.increment(cost: 1, windowSeconds: 1, max: 3))
        #expect(bucket.check(now: t0, windowSeconds: 1, max: 3, cost: 1).passed)
    }

    /// The case: max 2 per 4 s, one call, the bucket refills, a burst of 2 passes, and only then the
    /// first call's refund arrives. Had that call never happened, the burst would have filled the bucket all
    /// the same, so the refund must not let a third call through.
    @Test func aLateRefundAfterTheBucketRanEmptyGivesNothing() {
        var bucket = GCRABucket()
        let second: Int64 = 1_000_000
        let first = bucket.consume(now: t0, windowSeconds: 4, max: 2, cost: 1)
        for _ in 0..<2 {
            #expect(bucket.check(now: t0 + 3 * second, windowSeconds: 4, max: 2, cost: 1).passed)
            _ = bucket.consume(now: t0 + 3 * second, windowSeconds: 4, max: 2, cost: 1)
        }
        let back = bucket.refund(first, at: t0, windowSeconds: 4, max: 2, cost: 1)
        #expect(back == GCRATime(whole: 0, frac: 0))
        #expect(!bucket.check(now: t0 + 3 * second + 1, windowSeconds: 4, max: 2, cost: 1).passed)
    }

    /// A late refund while the bucket stayed busy gives back only the slack later calls never saw.
    @Test func aLateRefundGivesBackOnlyWhatLaterCallsLeftUntouched() {
        var bucket = GCRABucket()
        let second: Int64 = 1_000_000
        // max 4 per 4 s: T = 1 s. A at t0 → TAT t0+1; B at t0+0.5 → TAT t0+2.
        let a = bucket.consume(now: t0, windowSeconds: 4, max: 4, cost: 1)
        _ = bucket.consume(now: t0 + second / 2, windowSeconds: 4, max: 4, cost: 1)
        // Without A, B would have found the bucket empty at t0+0.5 and left TAT at t0+1.5: 0.5 s, not 1 s, back.
        let back = bucket.refund(a, at: t0, windowSeconds: 4, max: 4, cost: 1)
        #expect(back == GCRATime(whole: second / 2, frac: 0))
        #expect(bucket.tat == GCRATime(whole: t0 + 3 * second / 2, frac: 0))
    }

    @Test func incrementIsCostTimesWindowOverMax() {
        let inc = GCRABucket.increment(cost: 2, windowSeconds: 60, max: 7)
        // 120 000 000 / 7 = 17142857 remainder 1
        #expect(inc.whole == 17_142_857)
        #expect(inc.frac == 1)
    }
}
