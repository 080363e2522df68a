import Logging
import RedisScripts
import ToolgateCore

/// Approvals shared by a fleet: every approval lives in Redis under `<prefix>:{approvals:_}:…`, one slot on a
/// cluster, so each operation on one approval is one atomic script (`lua/approval_start.lua`,
/// `lua/approval_decide.lua`) and listing reads one slot's keys. Approvals are made by people, so one slot carries
/// them easily.
public final class RedisApprovalStore: ApprovalStore {
    public let deployment: RedisDeployment
    let keyPrefix: String
    let logger: Logger

    public init(deployment: RedisDeployment, keyPrefix: String, logger: Logger) {
        self.deployment = deployment
        self.keyPrefix = keyPrefix
        self.logger = logger
    }

    func recordKey(_ bindingKey: String) -> String { keyPrefix + ":{approvals:_}:" + bindingKey }
    var indexKey: String { keyPrefix + ":{approvals:_}:index" }
    /// A grant's open requests. The grant comes from outside, so only its hash shapes the key.
    func openKey(grant: String) -> String { keyPrefix + ":{approvals:_}:pending:" + CounterKey.subjectHash(grant) }

    public func start(_ binding: ApprovalBinding, newID: String, ttlSeconds: Int, creation: ApprovalCreation) async throws(LimitStoreError)
        -> ApprovalStart
    {
        let maxOpen: Int
        switch creation {
        case .lookOnly: maxOpen = 0
        case .create(let maxPendingPerGrant): maxOpen = max(1, maxPendingPerGrant)
        }
        let reply = try await evaluate(
            .approvalStart, keys: [recordKey(binding.key), indexKey, openKey(grant: binding.grant)],
            arguments: [
                newID, binding.key, String(Int64(ttlSeconds) * 1_000), binding.grant, binding.tool, binding.canonicalArguments,
                binding.policySHA256, String(maxOpen), binding.server ?? "",
            ])
        guard case .array(let items?) = reply, items.count == 5, let status = items[0].string, let id = items[1].string,
            case .integer(let created) = items[3], case .integer(let expires) = items[4]
        else { throw RedisLimitStore.unexpected(reply, "approval_start.lua") }
        switch status {
        case "approved": return .approved(id: id)
        case "denied": return .denied(id: id)
        case "absent": return .absent
        case "too_many": return .tooManyPending
        case "pending":
            return .pending(
                Approval(
                    id: id, state: .pending, grant: binding.grant, server: binding.server, tool: binding.tool,
                    arguments: binding.canonicalArguments,
                    policySHA256: binding.policySHA256, createdAtMillis: created, expiresAtMillis: expires))
        default: throw RedisLimitStore.unexpected(reply, "approval_start.lua")
        }
    }

    public func consume(id: String) async throws(LimitStoreError) -> Bool {
        guard Approval.isWellFormed(id: id) else { return false }
        let bindingKey = Approval.bindingKey(ofID: id)
        let reply = try await evaluate(.approvalConsume, keys: [recordKey(bindingKey), indexKey], arguments: [id, bindingKey])
        guard case .integer(let used) = reply else { throw RedisLimitStore.unexpected(reply, "approval_consume.lua") }
        return used == 1
    }

    public func decide(id: String, approve: Bool) async throws(LimitStoreError) -> ApprovalDecisionOutcome {
        guard Approval.isWellFormed(id: id) else { return .notFound }
        let bindingKey = Approval.bindingKey(ofID: id)
        // The record names its grant, whose open requests the decision leaves; a grant never changes, so reading
        // it first is safe.
        guard let before = try await read(bindingKey: bindingKey), before.id == id else { return .notFound }
        let reply = try await evaluate(
            .approvalDecide, keys: [recordKey(bindingKey), openKey(grant: before.grant)],
            arguments: [id, approve ? "approved" : "denied", bindingKey])
        guard case .array(let items?) = reply, items.count == 2, let status = items[0].string else {
            throw RedisLimitStore.unexpected(reply, "approval_decide.lua")
        }
        if status == "not_found" { return .notFound }
        // Read back for the caller to show; a record that expired in between reads as not found.
        guard let approval = try await read(bindingKey: bindingKey), approval.id == id else { return .notFound }
        return status == "decided" ? .decided(approval) : .alreadyDecided(approval)
    }

    public func list() async throws(LimitStoreError) -> [Approval] {
        let now = try await redisNowMillis()
        let reply = try await send(["ZRANGEBYSCORE", indexKey, String(now + 1), "+inf"], slotKey: indexKey)
        guard case .array(let members?) = reply else { throw RedisLimitStore.unexpected(reply, "ZRANGEBYSCORE") }
        var approvals: [Approval] = []
        for member in members {
            guard let bindingKey = member.string, let approval = try await read(bindingKey: bindingKey) else { continue }
            approvals.append(approval)
        }
        return approvals.sorted { a, b in
            a.createdAtMillis != b.createdAtMillis ? a.createdAtMillis < b.createdAtMillis : a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
        }
    }

    public func states(ids: [String]) async throws(LimitStoreError) -> [String: Approval.State] {
        var states: [String: Approval.State] = [:]
        for id in ids where Approval.isWellFormed(id: id) {
            let key = recordKey(Approval.bindingKey(ofID: id))
            let reply = try await send(["HMGET", key, "id", "state"], slotKey: key)
            guard case .array(let fields?) = reply, fields.count == 2 else { throw RedisLimitStore.unexpected(reply, "HMGET") }
            if fields[0].string == id, let state = fields[1].string.flatMap(Approval.State.init(rawValue:)) { states[id] = state }
        }
        return states
    }

    private func read(bindingKey: String) async throws(LimitStoreError) -> Approval? {
        let key = recordKey(bindingKey)
        let fields = ["id", "state", "grant", "tool", "arguments", "policy", "created", "expires", "server"]
        let reply = try await send(["HMGET", key] + fields, slotKey: key)
        guard case .array(let values?) = reply, values.count == fields.count else { throw RedisLimitStore.unexpected(reply, "HMGET") }
        let texts = values.map(\.string)
        guard let id = texts[0], let state = texts[1].flatMap(Approval.State.init(rawValue:)), let created = texts[6].flatMap({ Int64($0) }),
            let expires = texts[7].flatMap({ Int64($0) })
        else { return nil }
        return Approval(
            id: id, state: state, grant: texts[2] ?? "", server: texts[8].flatMap { $0.isEmpty ? nil : $0 }, tool: texts[3] ?? "", arguments: texts[4] ?? "", policySHA256: texts[5] ?? "",
            createdAtMillis: created, expiresAtMillis: expires)
    }

    private func redisNowMillis() async throws(LimitStoreError) -> Int64 {
        let reply = try await send(["TIME"], slotKey: indexKey)
        guard case .array(let parts?) = reply, parts.count == 2, let seconds = parts[0].string.flatMap({ Int64($0) }),
            let micros = parts[1].string.flatMap({ Int64($0) })
        else { throw RedisLimitStore.unexpected(reply, "TIME") }
        return seconds * 1_000 + micros / 1_000
    }

    /// A Redis error reply comes back as `.error`; callers find it does not have the shape they expect.
    private func send(_ arguments: [String], slotKey: String) async throws(LimitStoreError) -> RedisValue {
        do {
            return try await deployment.send(arguments, slotKey: slotKey)
        } catch {
            throw LimitStoreError(error)
        }
    }

    /// The script through `RedisDeployment.evaluate`; a Redis error reply is a failure.
    private func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(LimitStoreError) -> RedisValue {
        let reply: RedisValue
        do {
            reply = try await deployment.evaluate(script, keys: keys, arguments: arguments)
        } catch {
            throw LimitStoreError(error)
        }
        if case .error = reply { throw RedisLimitStore.unexpected(reply, script.fileName) }
        return reply
    }
}
