@testable import ToolgateCore

/// Deliberately naive models of each algorithm, written from DESIGN.md section 7 alone.
/// The stores must agree with them call for call.
protocol ReferenceLimit {
    func admits(now: Int64, cost: Int) -> Bool
    /// Earliest instant ≥ now at which a call of `cost` would be admitted if nothing else happened.
    func earliestAdmission(now: Int64, cost: Int) -> Int64
    mutating func consume(now: Int64, cost: Int, callID: String)
    mutating func refund(callID: String)
}

struct ReferenceSliding: ReferenceLimit {
    let window: Int64
    let max: Int
    var admitted: [(time: Int64, cost: Int, id: String)] = []

    func used(at t: Int64) -> Int {
        admitted.filter { $0.time > t - window }.reduce(0) { $0 + $1.cost }
    }

    func admits(now: Int64, cost: Int) -> Bool { used(at: now) + cost <= max }

    func earliestAdmission(now: Int64, cost: Int) -> Int64 {
        if admits(now: now, cost: cost) { return now }
        // Usage only drops when an entry leaves the window, at its time + window.
        let candidates = admitted.map { $0.time + window }.filter { $0 > now }.sorted()
        return candidates.first { admits(now: $0, cost: cost) }!
    }

    mutating func consume(now: Int64, cost: Int, callID: String) {
        if cost > 0 { admitted.append((now, cost, callID)) }
    }

    mutating func refund(callID: String) { admitted.removeAll { $0.id == callID } }
}

struct ReferenceFixed: ReferenceLimit {
    let window: Int64
    let max: Int
    var perWindow: [Int64: Int] = [:]
    var charged: [String: (index: Int64, cost: Int)] = [:]

    func index(_ t: Int64) -> Int64 { Int64((Double(t) / Double(window)).rounded(.down)) }

    func admits(now: Int64, cost: Int) -> Bool { perWindow[index(now), default: 0] + cost <= max }

    func earliestAdmission(now: Int64, cost: Int) -> Int64 {
        admits(now: now, cost: cost) ? now : (index(now) + 1) * window
    }

    mutating func consume(now: Int64, cost: Int, callID: String) {
        perWindow[index(now), default: 0] += cost
        charged[callID] = (index(now), cost)
    }

    /// A refund only matters while its window is current; the model applies it to the window it charged.
    mutating func refund(callID: String) {
        guard let c = charged.removeValue(forKey: callID) else { return }
        perWindow[c.index, default: 0] -= c.cost
    }
}

/// GCRA in exact integer arithmetic: all times scaled by `max`, so `T = window / max` becomes `window`.
struct ReferenceGCRA: ReferenceLimit {
    let window: Int64
    let max: Int
    var tatScaled: Int128 = 0
    var charged: [String: Int] = [:]

    private var m: Int128 { Int128(max) }
    private var w: Int128 { Int128(window) }

    func admits(now: Int64, cost: Int) -> Bool {
        let nowS = Int128(now) * m
        return Swift.max(tatScaled, nowS) + Int128(cost) * w - nowS <= w * m
    }

    func earliestAdmission(now: Int64, cost: Int) -> Int64 {
        if admits(now: now, cost: cost) { return now }
        // tat + cost·T − t ≤ window  ⇔  t·max ≥ tatScaled + cost·window − window·max
        let need = tatScaled + Int128(cost) * w - w * m
        let t = (need + m - 1) / m
        return Int64(t)
    }

    mutating func consume(now: Int64, cost: Int, callID: String) {
        tatScaled = Swift.max(tatScaled, Int128(now) * m) + Int128(cost) * w
        charged[callID] = cost
    }

    mutating func refund(callID: String) {
        guard let cost = charged.removeValue(forKey: callID) else { return }
        tatScaled -= Int128(cost) * w
    }
}
