import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// Random arrivals, costs and limits, checked against the reference models and against the guarantees
/// themselves. Each seed replays exactly.
@Suite struct LimitPropertyTests {
    static let seeds: [UInt64] = Array(1...60)
    static let base: Int64 = 1_764_000_000_000_000  // a whole number of days since the epoch, in µs

    struct Scenario {
        var rng: SeededGenerator
        let algorithm: LimitAlgorithm
        let windowSeconds: Int
        let max: Int
        var windowMicros: Int64 { Int64(windowSeconds) * 1_000_000 }

        init(seed: UInt64, algorithm: LimitAlgorithm) {
            rng = SeededGenerator(seed: seed &* 7919 &+ UInt64(LimitAlgorithm.allCases.firstIndex(of: algorithm)!))
            self.algorithm = algorithm
            windowSeconds = [1, 2, 3, 7, 60, 90, 3600].randomElement(using: &rng)!
            max = [1, 2, 3, 5, 10, 17, 50].randomElement(using: &rng)!
        }

        mutating func cost() -> Int {
            Int.random(in: 0..<10, using: &rng) < 7 ? 1 : Int.random(in: 0...max, using: &rng)
        }

        /// Bursts, small gaps, exact window edges and their neighbours, and long idle gaps.
        mutating func nextTime(after t: Int64) -> Int64 {
            let w = windowMicros
            switch Int.random(in: 0..<10, using: &rng) {
            case 0, 1: return t
            case 2, 3, 4: return t + Int64.random(in: 1...(2 * w / Int64(max)), using: &rng)
            case 5:
                let edge = (t / w + 1) * w
                return edge + Int64.random(in: -1...1, using: &rng)
            case 6: return t + w + Int64.random(in: -1...1, using: &rng)
            case 7: return t + Int64.random(in: 1...1_000, using: &rng)
            case 8: return t + Int64.random(in: w...(3 * w), using: &rng)
            default: return t + Int64.random(in: 1...w, using: &rng)
            }
        }

        func reference() -> any ReferenceLimit {
            switch algorithm {
            case .sliding: ReferenceSliding(window: windowMicros, max: max)
            case .fixed: ReferenceFixed(window: windowMicros, max: max)
            case .tokenBucket: ReferenceGCRA(window: windowMicros, max: max)
            }
        }
    }

    static func charge(_ s: Scenario, key: String = "k", cost: Int) -> LimitCharge {
        LimitCharge(
            key: key, counter: "c", rule: "t", scope: .global, window: Window(seconds: s.windowSeconds, text: "\(s.windowSeconds)s"),
            max: s.max, algorithm: s.algorithm, cost: cost)
    }

    @Test(arguments: LimitAlgorithm.allCases, seeds)
    func storeMatchesReferenceModel(algorithm: LimitAlgorithm, seed: UInt64) {
        var s = Scenario(seed: seed, algorithm: algorithm)
        let clock = ManualWallClock(micros: Self.base + Int64.random(in: 0..<s.windowMicros, using: &s.rng))
        let store = InMemoryLimitStore(clock: clock)
        var reference = s.reference()
        var admitted: [(time: Int64, cost: Int, id: String)] = []
        var now = clock.nowMicros()
        var pendingRetry: (time: Int64, cost: Int, probeEarly: Bool)?
        for step in 0..<400 {
            let cost: Int
            var probingEarly = false
            if let retry = pendingRetry, retry.probeEarly, retry.time - 1 >= now {
                // Tightness: one microsecond before the retry-after instant, the call is still refused.
                now = retry.time - 1
                cost = retry.cost
                probingEarly = true
                pendingRetry!.probeEarly = false
            } else if let retry = pendingRetry {
                // Liveness: nothing else competes, so a call at the retry-after instant must pass.
                now = retry.time
                cost = retry.cost
            } else {
                now = s.nextTime(after: now)
                cost = s.cost()
            }
            clock.set(micros: now)
            let id = "call-\(step)"
            let outcome = store.acquireNow(LimitRequest(callID: id, charges: [Self.charge(s, cost: cost)]))
            #expect(outcome.receipt == nil || (outcome.admitted && cost > 0))
            let expected = reference.admits(now: now, cost: cost)
            #expect(outcome.admitted == expected, "seed \(seed) step \(step) \(algorithm) t=\(now) cost=\(cost)")
            if probingEarly {
                #expect(!outcome.admitted, "tightness: seed \(seed) step \(step) \(algorithm)")
            } else if pendingRetry != nil {
                #expect(outcome.admitted, "liveness: seed \(seed) step \(step) \(algorithm)")
                pendingRetry = nil
            }
            if outcome.admitted {
                reference.consume(now: now, cost: cost, callID: id)
                admitted.append((now, cost, id))
            } else {
                let retry = outcome.results[0].retryAfterMicros
                #expect(retry >= 1)
                #expect(now + retry == reference.earliestAdmission(now: now, cost: cost), "seed \(seed) step \(step) \(algorithm)")
                if !probingEarly, Bool.random(using: &s.rng) {
                    pendingRetry = (now + retry, cost, Bool.random(using: &s.rng))
                }
            }
            // Now and then a call fails upstream and is refunded, while it is still inside its window.
            if outcome.admitted, Int.random(in: 0..<12, using: &s.rng) == 0 {
                if let receipt = outcome.receipt {
                    #expect(store.refundNow(receipt))
                    #expect(!store.refundNow(receipt))
                } else {
                    #expect(cost == 0)
                }
                reference.refund(callID: id)
                admitted.removeLast()
            }
        }
        Self.checkGuarantee(algorithm: algorithm, admitted: admitted, windowMicros: s.windowMicros, max: s.max)
    }

    /// Refunds that arrive late, after other calls came and went. A refund may never admit more than a run in
    /// which the refunded call never happened: replaying the admitted calls that were not refunded, in order,
    /// through a fresh reference model must admit every one of them. Sliding and fixed refunds are exact, so
    /// there the store must also agree with the reference call for call.
    @Test(arguments: LimitAlgorithm.allCases, seeds)
    func lateRefundsNeverAdmitMoreThanARunWithoutTheRefundedCalls(algorithm: LimitAlgorithm, seed: UInt64) {
        var s = Scenario(seed: seed &+ 5_000, algorithm: algorithm)
        let clock = ManualWallClock(micros: Self.base + Int64.random(in: 0..<s.windowMicros, using: &s.rng))
        let store = InMemoryLimitStore(clock: clock)
        var exact = s.reference()
        var admitted: [(time: Int64, cost: Int, id: String, receipt: LimitReceipt?)] = []
        var refunded: Set<String> = []
        var now = clock.nowMicros()
        for step in 0..<300 {
            now = s.nextTime(after: now)
            clock.set(micros: now)
            // Now and then an earlier call's refund arrives, however long ago it was admitted.
            let open = admitted.filter { !refunded.contains($0.id) && $0.receipt != nil }
            if !open.isEmpty, Int.random(in: 0..<5, using: &s.rng) == 0 {
                let late = open[Int.random(in: 0..<open.count, using: &s.rng)]
                #expect(store.refundNow(late.receipt!))
                refunded.insert(late.id)
                exact.refund(callID: late.id)
            }
            let cost = s.cost()
            let id = "call-\(step)"
            let outcome = store.acquireNow(LimitRequest(callID: id, charges: [Self.charge(s, cost: cost)]))
            if algorithm != .tokenBucket {
                #expect(outcome.admitted == exact.admits(now: now, cost: cost), "seed \(seed) step \(step) \(algorithm)")
            }
            if outcome.admitted {
                exact.consume(now: now, cost: cost, callID: id)
                admitted.append((now, cost, id, outcome.receipt))
            }
        }
        var replay = s.reference()
        for call in admitted where !refunded.contains(call.id) {
            #expect(replay.admits(now: call.time, cost: call.cost), "seed \(seed) \(algorithm): \(call.id) admitted beyond a run without the refunded calls")
            replay.consume(now: call.time, cost: call.cost, callID: call.id)
        }
        let kept = admitted.filter { !refunded.contains($0.id) }.map { ($0.time, $0.cost, $0.id) }
        Self.checkGuarantee(algorithm: algorithm, admitted: kept, windowMicros: s.windowMicros, max: s.max)
        #expect(!refunded.isEmpty || admitted.count < 5)
    }

    /// The guarantee of DESIGN.md section 7, checked on the admitted calls themselves.
    static func checkGuarantee(algorithm: LimitAlgorithm, admitted: [(time: Int64, cost: Int, id: String)], windowMicros w: Int64, max: Int) {
        switch algorithm {
        case .sliding:
            // No interval of length `window` holds more than `max`. The worst intervals end at an admission.
            for end in admitted {
                let inWindow = admitted.filter { $0.time > end.time - w && $0.time <= end.time }.reduce(0) { $0 + $1.cost }
                #expect(inWindow <= max)
            }
        case .fixed:
            var perWindow: [Int64: Int] = [:]
            for call in admitted { perWindow[FixedWindowCounter.windowIndex(now: call.time, windowMicros: w), default: 0] += call.cost }
            #expect(perWindow.values.allSatisfy { $0 <= max })
        case .tokenBucket:
            // GCRA never admits more than burst + rate × length in any interval. Arrivals are in time order.
            var prefix = [0]
            for call in admitted { prefix.append(prefix.last! + call.cost) }
            for i in admitted.indices where i == 0 || admitted[i - 1].time < admitted[i].time {
                for j in i..<admitted.count where j == admitted.count - 1 || admitted[j + 1].time > admitted[j].time {
                    let span = admitted[j].time - admitted[i].time
                    let inSpan = prefix[j + 1] - prefix[i]
                    let bound = Int128(max) * Int128(w) + Int128(span) * Int128(max)
                    #expect(Int128(inSpan) * Int128(w) <= bound)
                }
            }
        }
    }

    /// All or nothing across several counters with different algorithms.
    @Test(arguments: seeds)
    func multiLimitCallsAreAllOrNothing(seed: UInt64) {
        let scenarios = LimitAlgorithm.allCases.map { Scenario(seed: seed &+ 1000, algorithm: $0) }
        var rng = SeededGenerator(seed: seed)
        let clock = ManualWallClock(micros: Self.base)
        let store = InMemoryLimitStore(clock: clock)
        var references = scenarios.map { $0.reference() }
        var timeline = scenarios[0]
        var now = Self.base
        for step in 0..<300 {
            now = timeline.nextTime(after: now)
            clock.set(micros: now)
            let chosen = (0..<3).filter { _ in Bool.random(using: &rng) }
            guard !chosen.isEmpty else { continue }
            let costs = chosen.map { _ in Int.random(in: 0..<4, using: &rng) == 0 ? 2 : 1 }
            let charges = zip(chosen, costs).map { i, cost in
                Self.charge(scenarios[i], key: "k\(i)", cost: Swift.min(cost, scenarios[i].max))
            }
            let id = "call-\(step)"
            let outcome = store.acquireNow(LimitRequest(callID: id, charges: charges))
            let passes = zip(chosen, charges).map { i, c in references[i].admits(now: now, cost: c.cost) }
            #expect(outcome.results.map(\.passed) == passes, "seed \(seed) step \(step)")
            #expect(outcome.admitted == passes.allSatisfy { $0 })
            if outcome.admitted {
                for (i, c) in zip(chosen, charges) { references[i].consume(now: now, cost: c.cost, callID: id) }
            }
        }
    }
}
