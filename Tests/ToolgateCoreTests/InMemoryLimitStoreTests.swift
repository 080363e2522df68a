import Testing
@testable import ToolgateCore

@Suite struct InMemoryLimitStoreTests {
    static let t0: Int64 = 1_764_000_000_000_000

    static func charge(
        _ key: String, max: Int, window: Int = 60, algorithm: LimitAlgorithm = .sliding, cost: Int = 1, shadow: Bool = false
    ) -> LimitCharge {
        LimitCharge(
            key: key, counter: key, rule: "t", scope: .global, window: Window(seconds: window, text: "\(window)s"),
            max: max, algorithm: algorithm, cost: cost, shadow: shadow)
    }

    @Test(arguments: LimitAlgorithm.allCases)
    func concurrentCallersGetExactlyMax(algorithm: LimitAlgorithm) async throws {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let charge = Self.charge("shared", max: 100, algorithm: algorithm)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<2_000 {
                group.addTask { try await store.acquire(LimitRequest(callID: "c\(i)", charges: [charge])).admitted }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 100)
    }

    @Test func aFailingLimitConsumesNothingElse() throws {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let wide = Self.charge("wide", max: 5)
        let narrow = Self.charge("narrow", max: 2, algorithm: .fixed)
        for i in 0..<2 { #expect(store.acquireNow(LimitRequest(callID: "a\(i)", charges: [wide, narrow])).admitted) }
        for i in 0..<10 {
            let outcome = store.acquireNow(LimitRequest(callID: "b\(i)", charges: [wide, narrow]))
            #expect(!outcome.admitted)
            #expect(outcome.results.map(\.passed) == [true, false])
        }
        // `wide` was charged only by the two admitted calls: three remain.
        let alone = store.acquireNow(LimitRequest(callID: "c", charges: [wide]))
        #expect(alone.admitted)
        #expect(alone.results[0].remaining == 2)
    }

    @Test func shadowLimitsCountButNeverDeny() {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let shadow = Self.charge("shadow", max: 1, shadow: true)
        let real = Self.charge("real", max: 10)
        let first = store.acquireNow(LimitRequest(callID: "1", charges: [shadow, real]))
        #expect(first.admitted && first.results.allSatisfy(\.passed))
        let second = store.acquireNow(LimitRequest(callID: "2", charges: [shadow, real]))
        #expect(second.admitted)
        #expect(second.results.map(\.passed) == [false, true])
        #expect(second.results[1].remaining == 8)
        // A shadow limit that passes is consumed, as it would be if enforced.
        let shadowOnly = store.acquireNow(LimitRequest(callID: "3", charges: [Self.charge("shadow", max: 2, shadow: true)]))
        #expect(shadowOnly.results[0].passed && shadowOnly.results[0].remaining == 0)
    }

    @Test(arguments: LimitAlgorithm.allCases)
    func refundIsIdempotent(algorithm: LimitAlgorithm) throws {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let charge = Self.charge("k", max: 2, algorithm: algorithm)
        let a = store.acquireNow(LimitRequest(callID: "a", charges: [charge]))
        #expect(a.admitted)
        #expect(store.acquireNow(LimitRequest(callID: "b", charges: [charge])).admitted)
        #expect(!store.acquireNow(LimitRequest(callID: "c", charges: [charge])).admitted)
        let receipt = try #require(a.receipt)
        #expect(store.refundNow(receipt))
        #expect(!store.refundNow(receipt))
        #expect(store.acquireNow(LimitRequest(callID: "d", charges: [charge])).admitted)
        // The double refund gave back nothing more: the counter is full again.
        #expect(!store.acquireNow(LimitRequest(callID: "e", charges: [charge])).admitted)
    }

    /// A reload that changes a counter's algorithm or window starts it fresh, as on Redis; a refund from before
    /// the change leaves the new counter alone.
    @Test func aCounterWhoseAlgorithmOrWindowChangesStartsFresh() throws {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let variants: [(LimitAlgorithm, Int)] = [(.sliding, 60), (.fixed, 60), (.tokenBucket, 60), (.tokenBucket, 30), (.sliding, 120), (.fixed, 60)]
        var receipts: [LimitReceipt] = []
        for (n, (algorithm, window)) in variants.enumerated() {
            let charge = Self.charge("k", max: 1, window: window, algorithm: algorithm)
            let first = store.acquireNow(LimitRequest(callID: "a\(n)", charges: [charge]))
            #expect(first.admitted, "\(algorithm) \(window)s")
            receipts.append(try #require(first.receipt))
            #expect(!store.acquireNow(LimitRequest(callID: "b\(n)", charges: [charge])).admitted)
        }
        // Refunds of calls made under earlier variants: the current counter stays full.
        for receipt in receipts.dropLast() { #expect(store.refundNow(receipt)) }
        #expect(!store.acquireNow(LimitRequest(callID: "c", charges: [Self.charge("k", max: 1, window: 60, algorithm: .fixed)])).admitted)
    }

    /// No per-call record: after 50,000 admitted calls in a day-long window the store holds one counter, whose
    /// sliding log has one entry per call; refunds leave only short-lived markers.
    @Test func aDayLongWindowAfterFiftyThousandCallsHoldsOnlyItsCounter() throws {
        let clock = ManualWallClock(micros: Self.t0)
        let store = InMemoryLimitStore(clock: clock)
        let charge = Self.charge("calls", max: 1_000_000, window: 86_400)
        var receipts: [LimitReceipt] = []
        for i in 0..<50_000 {
            clock.advance(micros: 1_000)
            let outcome = store.acquireNow(LimitRequest(callID: "c\(i)", charges: [charge]))
            #expect(outcome.admitted)
            if i % 10_000 == 0 { receipts.append(try #require(outcome.receipt)) }
        }
        #expect(store.keyCount == 1)
        #expect(store.slidingEntryCount == 50_000)
        for receipt in receipts { #expect(store.refundNow(receipt)) }
        #expect(store.slidingEntryCount == 50_000 - receipts.count)
        #expect(store.keyCount == 1 + receipts.count)  // the counter and the refund markers
    }

    @Test func callsWithoutChargesAreAdmittedAndLeaveNothing() {
        let store = InMemoryLimitStore(clock: ManualWallClock(micros: Self.t0))
        let outcome = store.acquireNow(LimitRequest(callID: "x", charges: []))
        #expect(outcome.admitted && outcome.results.isEmpty)
        #expect(outcome.decidedAtMicros == Self.t0)
        #expect(store.keyCount == 0)
    }

    @Test(arguments: LimitAlgorithm.allCases)
    func idleKeysExpireSoMemoryStaysBounded(algorithm: LimitAlgorithm) {
        let clock = ManualWallClock(micros: Self.t0)
        let store = InMemoryLimitStore(clock: clock)
        for subject in 0..<1_000 {
            let charge = Self.charge("subject-\(subject)", max: 3, window: 10, algorithm: algorithm)
            #expect(store.acquireNow(LimitRequest(callID: "call-\(subject)", charges: [charge])).admitted)
        }
        #expect(store.keyCount == 1_000)  // counters only: receipts stay with the caller
        clock.advance(micros: 1_000_000)
        store.sweep()
        #expect(store.keyCount == 1_000)  // still inside the window
        clock.advance(micros: 19_001_001)  // two windows after the last call, and the millisecond Redis keeps a key past its expiry
        // The next decision sweeps on its own.
        _ = store.acquireNow(LimitRequest(callID: "late", charges: []))
        #expect(store.keyCount == 0)
    }

    @Test func aSweptCounterStartsFresh() {
        let clock = ManualWallClock(micros: Self.t0)
        let store = InMemoryLimitStore(clock: clock)
        let charge = Self.charge("k", max: 1, window: 1)
        #expect(store.acquireNow(LimitRequest(callID: "a", charges: [charge])).admitted)
        #expect(!store.acquireNow(LimitRequest(callID: "b", charges: [charge])).admitted)
        clock.advance(micros: 1_000_000)
        #expect(store.acquireNow(LimitRequest(callID: "c", charges: [charge])).admitted)
    }
}
