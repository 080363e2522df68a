import Logging
import RedisScripts
import ToolgateCore

/// Limits shared by a fleet: every decision is one `EVALSHA` of `lua/acquire.lua`, which checks and consumes
/// all of a call's limits atomically with Redis `TIME`, so host clocks never matter. What a call consumed
/// comes back as a receipt that the sidecar keeps; Redis holds only the counters.
///
/// On a Redis Cluster a script runs on one slot's master, so a call whose limits span slots is reserve-then-refund
/// (DESIGN.md section 7): slot by slot in ascending slot order, stopping at the first denial and refunding what the
/// earlier slots consumed. Meanwhile other calls may see the reservation, which errs toward denying.
public final class RedisLimitStore: LimitStore {
    public let deployment: RedisDeployment
    let keyPrefix: String
    let logger: Logger

    public init(deployment: RedisDeployment, keyPrefix: String, logger: Logger) {
        self.deployment = deployment
        self.keyPrefix = keyPrefix
        self.logger = logger
    }

    /// A standalone Redis through this client.
    public convenience init(client: RedisClient, keyPrefix: String, logger: Logger) {
        self.init(deployment: RedisDeployment(client: client, logger: logger), keyPrefix: keyPrefix, logger: logger)
    }

    /// The refund marker lives in the first counter's slot: `<prefix>:{<scope>:<subject>}:refund:<call id>`.
    func markerKey(_ receipt: LimitReceipt) -> String {
        let first = receipt.items[0].key
        if let open = first.firstIndex(of: "{"), let close = first[open...].firstIndex(of: "}") {
            return keyPrefix + ":" + first[open...close] + ":refund:" + receipt.callID
        }
        return keyPrefix + ":refund:" + receipt.callID
    }

    public func acquire(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome {
        guard deployment.isCluster else { return try await acquireInOneScript(request) }
        let groups = Self.slotGroups(request.charges.indices.map { (index: $0, key: request.charges[$0].key) })
        if groups.count <= 1 { return try await acquireInOneScript(request) }
        // Reserve-then-refund, ascending slot order.
        var results = request.charges.map { LimitResult(passed: true, remaining: $0.max, retryAfterMicros: 0) }
        var consumed: [LimitReceipt] = []
        var decidedAt: Int64 = 0
        for group in groups {
            let part = LimitRequest(callID: request.callID, charges: group.map { request.charges[$0] })
            let outcome: LimitOutcome
            do {
                outcome = try await acquireInOneScript(part)
            } catch {
                // Under --fail-mode open a slot that was not replicated kept its charge, and so do the earlier ones:
                // the call goes ahead.
                if error.code != .notReplicated || deployment.replicaWait?.keepUnreplicatedCharges != true {
                    await refundAll(consumed)
                }
                throw error
            }
            decidedAt = max(decidedAt, outcome.decidedAtMicros)
            for (position, index) in group.enumerated() { results[index] = outcome.results[position] }
            guard outcome.admitted else {
                await refundAll(consumed)
                return LimitOutcome(admitted: false, results: results, decidedAtMicros: decidedAt)
            }
            if let receipt = outcome.receipt { consumed.append(receipt) }
        }
        // Each slot decided at its own time; a refund gives each slot back its own.
        let items = consumed.flatMap { receipt in
            receipt.items.map { item in
                var item = item
                item.decidedAtMicros = receipt.decidedAtMicros
                return item
            }
        }
        let receipt = items.isEmpty ? nil : LimitReceipt(callID: request.callID, decidedAtMicros: decidedAt, items: items)
        return LimitOutcome(admitted: true, results: results, decidedAtMicros: decidedAt, receipt: receipt)
    }

    /// Indices grouped by cluster slot, groups in ascending slot order, each keeping the given order.
    static func slotGroups(_ keys: [(index: Int, key: String)]) -> [[Int]] {
        var bySlot: [Int: [Int]] = [:]
        for (index, key) in keys { bySlot[ClusterSlot.of(key), default: []].append(index) }
        return bySlot.keys.sorted().map { bySlot[$0]! }
    }

    private func refundAll(_ receipts: [LimitReceipt]) async {
        for receipt in receipts {
            do {
                try await refund(receipt)
            } catch {
                logger.warning(
                    "could not give back a reservation on Redis Cluster; it expires with its window",
                    metadata: ["callID": "\(receipt.callID)", "error": "\(error.message)"])
            }
        }
    }

    /// One `EVALSHA`: on a cluster every key is in one slot.
    private func acquireInOneScript(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome {
        let keys = request.charges.map(\.key)
        var arguments = [request.callID, String(request.charges.count)]
        arguments.reserveCapacity(2 + request.charges.count * 5)
        for charge in request.charges {
            arguments += [
                charge.algorithm.rawValue, String(charge.window.seconds), String(charge.max), String(charge.cost),
                charge.shadow ? "1" : "0",
            ]
        }
        let lateReply: @Sendable (RedisValue) -> Void = { [weak self] late in
            // The caller already gave up on this decision; if the script consumed anyway, give it back.
            guard let self, let receipt = (try? Self.outcome(from: late, request: request))?.receipt else { return }
            Task { [self] in
                self.logger.warning("refunding a decision that arrived after its timeout", metadata: ["callID": "\(receipt.callID)"])
                _ = try? await self.refund(receipt)
            }
        }
        guard let replicaWait = deployment.replicaWait else {
            let reply = try await evaluate(.acquire, keys: keys, arguments: arguments, onLateReply: lateReply)
            return try Self.outcome(from: reply, request: request)
        }
        let sent: (reply: RedisValue, replicated: ReplyPromise?)
        do {
            sent = try await deployment.evaluateReplicated(.acquire, keys: keys, arguments: arguments, onLateReply: lateReply)
        } catch {
            throw LimitStoreError(error)
        }
        let outcome = try Self.outcome(from: sent.reply, request: request)
        // A decision that consumed nothing wrote nothing a failover could lose: its WAIT reply is not needed.
        guard let receipt = outcome.receipt, let replicated = sent.replicated else { return outcome }
        let problem: String
        do {
            let reply = try await replicated.value()
            if case .integer(let count) = reply, count >= Int64(replicaWait.replicas) { return outcome }
            problem = "WAIT \(replicaWait.replicas) \(RedisError.format(replicaWait.timeout)): \(Self.describeWait(reply))"
        } catch {
            problem = "WAIT \(replicaWait.replicas) failed: \(error.message)"
        }
        if replicaWait.keepUnreplicatedCharges {
            // --fail-mode open: the call goes ahead, so its charge stays (it counts on the master).
            throw LimitStoreError(code: .notReplicated, message: "redis: \(problem); the call is admitted (fail mode open) and its charge kept")
        }
        do {
            try await refund(receipt)
        } catch {
            logger.warning(
                "could not refund a decision whose write did not reach enough replicas; it expires with its window",
                metadata: ["callID": "\(receipt.callID)", "error": "\(error.message)"])
        }
        throw LimitStoreError(code: .notReplicated, message: "redis: \(problem); the charge was refunded")
    }

    static func describeWait(_ reply: RedisValue) -> String {
        switch reply {
        case .integer(let count): "only \(count) replica\(count == 1 ? "" : "s") acknowledged the write in time"
        case .error(let message): "Redis refused WAIT (\(message))"
        default: "unexpected reply \(reply)"
        }
    }

    @discardableResult
    public func refund(_ receipt: LimitReceipt) async throws(LimitStoreError) -> Bool {
        guard !receipt.items.isEmpty else { return false }
        if deployment.isCluster {
            let groups = Self.slotGroups(receipt.items.indices.map { (index: $0, key: receipt.items[$0].key) })
            if groups.count > 1 {
                // One refund per slot, each with its own marker in that slot; all are tried.
                var refunded = false
                var failure: LimitStoreError?
                for group in groups {
                    let items = group.map { receipt.items[$0] }
                    let part = LimitReceipt(
                        callID: receipt.callID, decidedAtMicros: items[0].decidedAtMicros ?? receipt.decidedAtMicros, items: items)
                    do {
                        refunded = try await refundInOneScript(part) || refunded
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
                return refunded
            }
        }
        return try await refundInOneScript(receipt)
    }

    private func refundInOneScript(_ receipt: LimitReceipt) async throws(LimitStoreError) -> Bool {
        var keys = [markerKey(receipt)]
        var arguments = [
            receipt.callID, String(receipt.items.count), String(Int64(receipt.longestWindowSeconds) * 1_000),
            String(receipt.decidedAtMicros),
        ]
        for item in receipt.items {
            keys.append(item.key)
            var r: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
            switch item.detail {
            case .sliding: break
            case .fixed(let index): r.0 = index
            case .tokenBucket(let g): r = (g.tatAfter.whole, g.tatAfter.frac, g.refundedBefore.whole, g.refundedBefore.frac)
            }
            arguments += [
                item.algorithm.rawValue, String(item.windowSeconds), String(item.max), String(item.cost),
                String(r.0), String(r.1), String(r.2), String(r.3), item.incarnation,
            ]
        }
        let reply = try await evaluate(.refund, keys: keys, arguments: arguments)
        guard case .integer(let n) = reply else { throw Self.unexpected(reply, "refund.lua") }
        return n == 1
    }

    /// The script through `RedisDeployment.evaluate`, its failures as the store's.
    private func evaluate(
        _ script: RedisScript, keys: [String], arguments: [String], onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(LimitStoreError) -> RedisValue {
        do {
            return try await deployment.evaluate(script, keys: keys, arguments: arguments, onLateReply: onLateReply)
        } catch {
            throw LimitStoreError(error)
        }
    }

    /// passed, remaining, retry, four receipt numbers, and the counter's incarnation (a string).
    static let valuesPerLimit = 8

    static func outcome(from reply: RedisValue, request: LimitRequest) throws(LimitStoreError) -> LimitOutcome {
        let count = request.charges.count
        guard case .array(let items?) = reply, items.count == 2 + valuesPerLimit * count else {
            throw unexpected(reply, "acquire.lua")
        }
        var numbers: [Int64] = []
        var incarnations: [String] = []
        numbers.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            if index >= 2, (index - 2) % valuesPerLimit == valuesPerLimit - 1 {
                switch item {
                case .bulkString(let bytes?): incarnations.append(String(decoding: bytes, as: UTF8.self))
                case .integer(0): incarnations.append("")
                default: throw unexpected(reply, "acquire.lua")
                }
                numbers.append(0)
                continue
            }
            guard case .integer(let n) = item else { throw unexpected(reply, "acquire.lua") }
            numbers.append(n)
        }
        let admitted = numbers[0] == 1
        let now = numbers[1]
        var results: [LimitResult] = []
        var consumed: [ConsumedLimit] = []
        results.reserveCapacity(count)
        for (i, charge) in request.charges.enumerated() {
            let base = 2 + i * valuesPerLimit
            let passed = numbers[base] == 1
            results.append(LimitResult(passed: passed, remaining: Int(numbers[base + 1]), retryAfterMicros: numbers[base + 2]))
            guard admitted, passed, charge.cost > 0 else { continue }
            let detail: ConsumedLimit.Detail
            switch charge.algorithm {
            case .sliding: detail = .sliding
            case .fixed: detail = .fixed(windowIndex: numbers[base + 3])
            case .tokenBucket:
                detail = .tokenBucket(
                    GCRAReceipt(
                        tatAfter: GCRATime(whole: numbers[base + 3], frac: numbers[base + 4]),
                        refundedBefore: GCRATime(whole: numbers[base + 5], frac: numbers[base + 6])))
            }
            consumed.append(
                ConsumedLimit(
                    key: charge.key, algorithm: charge.algorithm, windowSeconds: charge.window.seconds, max: charge.max,
                    cost: charge.cost, incarnation: incarnations[i], detail: detail))
        }
        let receipt = consumed.isEmpty ? nil : LimitReceipt(callID: request.callID, decidedAtMicros: now, items: consumed)
        return LimitOutcome(admitted: admitted, results: results, decidedAtMicros: now, receipt: receipt)
    }

    static func unexpected(_ reply: RedisValue, _ script: String) -> LimitStoreError {
        if case .error(let message) = reply {
            return LimitStoreError(code: .protocolError, message: "redis: \(script) failed: \(message)")
        }
        return LimitStoreError(code: .protocolError, message: "redis: unexpected reply from \(script): \(reply)")
    }
}
