/// Where relayed `requestState`s are remembered until their follow-up comes: in memory, or in Redis so a
/// follow-up that reaches another sidecar of the fleet is recognised too.
public protocol RoundStateStore: Sendable {
    /// Remembers a state relayed to an agent for `ttlSeconds`.
    func remember(_ binding: RoundBinding, ttlSeconds: Int) async throws(LimitStoreError)

    /// Forgets the state and says whether it was remembered: true at most once per `remember`, so a state
    /// replayed after its use is charged like a new call.
    func take(_ binding: RoundBinding) async throws(LimitStoreError) -> Bool
}
