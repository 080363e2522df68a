/// What one admitted call consumed, kept by the sidecar until the call completes ("reserve, then refund").
///
/// The store keeps no per-call record: a refund carries everything it needs, and the store checks it
/// against the counter's current state, so a refund that comes late, or after the policy changed the
/// counter, gives back only what is provably safe.
public struct LimitReceipt: Sendable, Equatable {
    public let callID: String
    /// The store's decision time, in epoch microseconds.
    public let decidedAtMicros: Int64
    public let items: [ConsumedLimit]

    public init(callID: String, decidedAtMicros: Int64, items: [ConsumedLimit]) {
        self.callID = callID
        self.decidedAtMicros = decidedAtMicros
        self.items = items
    }

    /// The longest window among the items: after it, no refund can matter any more.
    public var longestWindowSeconds: Int { items.map(\.windowSeconds).max() ?? 0 }
}

/// One counter's share of a receipt.
public struct ConsumedLimit: Sendable, Equatable {
    public let key: String
    public let algorithm: LimitAlgorithm
    public let windowSeconds: Int
    public let max: Int
    public let cost: Int
    /// Which life of the counter the call consumed: the id of the call that (re)created it. A counter that a
    /// reload restarted (algorithm or window changed, and perhaps changed back) is another life, and a refund
    /// of a call from an earlier one must not touch it.
    public let incarnation: String
    public let detail: Detail
    /// When this counter's store decided, if not at the receipt's time: a call across cluster slots is decided slot
    /// by slot, and a refund must give each slot its own decision time.
    public var decidedAtMicros: Int64?

    public enum Detail: Sendable, Equatable {
        /// The log entry `<callID>:<cost>` at the decision time.
        case sliding
        /// The aligned window that was charged.
        case fixed(windowIndex: Int64)
        case tokenBucket(GCRAReceipt)
    }

    public init(
        key: String, algorithm: LimitAlgorithm, windowSeconds: Int, max: Int, cost: Int, incarnation: String, detail: Detail
    ) {
        self.key = key
        self.incarnation = incarnation
        self.algorithm = algorithm
        self.windowSeconds = windowSeconds
        self.max = max
        self.cost = cost
        self.detail = detail
    }
}

/// What a token-bucket refund needs to stay safe when it comes late (see `GCRABucket.refund`).
public struct GCRAReceipt: Sendable, Equatable {
    /// The bucket's TAT right after this call consumed.
    public let tatAfter: GCRATime
    /// The bucket's running total of refunds at that moment.
    public let refundedBefore: GCRATime

    public init(tatAfter: GCRATime, refundedBefore: GCRATime) {
        self.tatAfter = tatAfter
        self.refundedBefore = refundedBefore
    }
}
