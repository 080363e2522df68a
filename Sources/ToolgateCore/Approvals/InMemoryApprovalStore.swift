import Synchronization

/// Approvals for a sidecar without Redis: the same rules as the Redis scripts, in memory, on an injected clock.
/// Expired records are dropped as they are met, so memory is bounded by approvals asked for within one TTL.
public final class InMemoryApprovalStore: ApprovalStore {
    private let clock: any WallClock
    private let records = Mutex<[String: Approval]>([:])

    public init(clock: any WallClock) { self.clock = clock }

    private var nowMillis: Int64 { clock.nowMicros() / 1_000 }

    public func start(_ binding: ApprovalBinding, newID: String, ttlSeconds: Int, creation: ApprovalCreation) async throws(LimitStoreError)
        -> ApprovalStart
    {
        let now = nowMillis
        return records.withLock { records in
            Self.prune(&records, now: now)
            let key = binding.key
            if let existing = records[key] {
                switch existing.state {
                case .approved: return .approved(id: existing.id)
                case .pending: return .pending(existing)
                case .denied: return .denied(id: existing.id)
                }
            }
            guard case .create(let maxPending) = creation else { return .absent }
            let open = records.values.count { $0.state == .pending && $0.grant.isExactly(binding.grant) }
            guard open < maxPending else { return .tooManyPending }
            let created = Approval(
                id: newID, state: .pending, grant: binding.grant, server: binding.server, tool: binding.tool, arguments: binding.canonicalArguments,
                policySHA256: binding.policySHA256, createdAtMillis: now, expiresAtMillis: now + Int64(ttlSeconds) * 1_000)
            records[key] = created
            return .pending(created)
        }
    }

    public func consume(id: String) async throws(LimitStoreError) -> Bool {
        let now = nowMillis
        return records.withLock { records in
            Self.prune(&records, now: now)
            let key = Approval.bindingKey(ofID: id)
            guard let existing = records[key], existing.id.isExactly(id), existing.state == .approved else { return false }
            records[key] = nil
            return true
        }
    }

    public func decide(id: String, approve: Bool) async throws(LimitStoreError) -> ApprovalDecisionOutcome {
        let now = nowMillis
        return records.withLock { records in
            Self.prune(&records, now: now)
            let key = Approval.bindingKey(ofID: id)
            guard let existing = records[key], existing.id.isExactly(id) else { return .notFound }
            guard existing.state == .pending else { return .alreadyDecided(existing) }
            let decided = Approval(
                id: existing.id, state: approve ? .approved : .denied, grant: existing.grant, server: existing.server,
                tool: existing.tool,
                arguments: existing.arguments, policySHA256: existing.policySHA256, createdAtMillis: existing.createdAtMillis,
                expiresAtMillis: existing.expiresAtMillis)
            records[key] = decided
            return .decided(decided)
        }
    }

    public func list() async throws(LimitStoreError) -> [Approval] {
        let now = nowMillis
        return records.withLock { records in
            Self.prune(&records, now: now)
            return records.values.sorted { a, b in
                a.createdAtMillis != b.createdAtMillis ? a.createdAtMillis < b.createdAtMillis : a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
            }
        }
    }

    public func states(ids: [String]) async throws(LimitStoreError) -> [String: Approval.State] {
        let now = nowMillis
        return records.withLock { records in
            Self.prune(&records, now: now)
            var states: [String: Approval.State] = [:]
            for id in ids {
                if let record = records[Approval.bindingKey(ofID: id)], record.id.isExactly(id) { states[id] = record.state }
            }
            return states
        }
    }

    private static func prune(_ records: inout [String: Approval], now: Int64) {
        records = records.filter { $0.value.expiresAtMillis > now }
    }
}
