/// Where counters live: embedded in memory, or in Redis for a fleet.
///
/// The evaluator never knows which one it has. Both give the same answers for the same arrivals.
public protocol LimitStore: Sendable {
    /// Checks every charge and consumes them all only if every enforced one passes: all or nothing.
    /// Shadow charges are consumed when they pass and never block the call.
    func acquire(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome

    /// Gives back what an admitted call consumed, as far as that never admits more than a run in which the
    /// call never happened. The receipt comes from the call's `LimitOutcome`: the sidecar keeps it until the
    /// call completes, so the store keeps no per-call state. Idempotent: returns false when this call was
    /// already refunded.
    @discardableResult
    func refund(_ receipt: LimitReceipt) async throws(LimitStoreError) -> Bool
}

public struct LimitRequest: Sendable {
    /// Unique per call; the key for refunds and the sliding log's member.
    public let callID: String
    public let charges: [LimitCharge]

    public init(callID: String, charges: [LimitCharge]) {
        self.callID = callID
        self.charges = charges
    }
}

/// The store's answer for one call.
public struct LimitOutcome: Sendable, Equatable {
    /// True when every enforced (non-shadow) charge passed, and so everything that passed was consumed.
    public let admitted: Bool
    /// One per charge, in request order.
    public let results: [LimitResult]
    /// The store's clock at the decision, in epoch microseconds (Redis `TIME` for the Redis store).
    public let decidedAtMicros: Int64
    /// What an admitted call consumed, for a refund; nil when it was denied or consumed nothing.
    public let receipt: LimitReceipt?

    public init(admitted: Bool, results: [LimitResult], decidedAtMicros: Int64, receipt: LimitReceipt? = nil) {
        self.admitted = admitted
        self.results = results
        self.decidedAtMicros = decidedAtMicros
        self.receipt = receipt
    }
}

public struct LimitResult: Sendable, Equatable {
    public let passed: Bool
    /// Cost units still available in this counter after the decision.
    public let remaining: Int
    /// When `passed` is false: how long until a call of the same cost would pass, if nothing else competes.
    public let retryAfterMicros: Int64

    public init(passed: Bool, remaining: Int, retryAfterMicros: Int64) {
        self.passed = passed
        self.remaining = remaining
        self.retryAfterMicros = retryAfterMicros
    }
}

public struct LimitStoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The store could not be reached.
        case unavailable
        /// The store did not answer within its timeout.
        case timeout
        /// The store answered something toolgate cannot interpret.
        case protocolError
        /// The decision consumed, but fewer replicas than `--redis-wait-replicas` acknowledged the write in time.
        case notReplicated
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
