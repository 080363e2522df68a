import Logging
import ToolgateCore

/// Relayed `requestState`s shared by a fleet, so a follow-up that reaches another sidecar is recognised too. Each
/// is one key, `<prefix>:round:<hash>`, and each operation one atomic command: `SET … PX` to remember, `DEL` to take
/// (it answers 1 only to the first taker, and 0 once the key has expired). No script is needed for one key and
/// one command; on a cluster each key goes to its own slot's master.
public final class RedisRoundStateStore: RoundStateStore {
    public let deployment: RedisDeployment
    let keyPrefix: String

    public init(deployment: RedisDeployment, keyPrefix: String) {
        self.deployment = deployment
        self.keyPrefix = keyPrefix
    }

    public convenience init(client: RedisClient, keyPrefix: String, logger: Logger) {
        self.init(deployment: RedisDeployment(client: client, logger: logger), keyPrefix: keyPrefix)
    }

    func key(_ binding: RoundBinding) -> String { keyPrefix + ":round:" + binding.key }

    public func remember(_ binding: RoundBinding, ttlSeconds: Int) async throws(LimitStoreError) {
        let key = key(binding)
        let reply = try await send(["SET", key, "1", "PX", String(Int64(ttlSeconds) * 1_000)], slotKey: key)
        guard case .simpleString("OK") = reply else { throw RedisLimitStore.unexpected(reply, "SET") }
    }

    public func take(_ binding: RoundBinding) async throws(LimitStoreError) -> Bool {
        let key = key(binding)
        let reply = try await send(["DEL", key], slotKey: key)
        guard case .integer(let removed) = reply else { throw RedisLimitStore.unexpected(reply, "DEL") }
        return removed == 1
    }

    private func send(_ arguments: [String], slotKey: String) async throws(LimitStoreError) -> RedisValue {
        do {
            return try await deployment.send(arguments, slotKey: slotKey)
        } catch {
            throw LimitStoreError(error)
        }
    }
}
