/// Whether the agent that sent a request is still there to read the answer. Work for an agent that has gone is
/// stopped (DESIGN.md section 4, "Bounded work per request"): whoever does slow work for the request (the
/// transport waiting for the upstream, the relay reading its body) hands over how to stop it.
public protocol AgentPresence: Sendable {
    /// Runs `stop` once when the agent goes away (at once if it already has), until `clearDeparture` is called or
    /// another action replaces it. One exchange at a time is in flight per agent connection, so one action is kept.
    func onDeparture(_ stop: @escaping @Sendable () -> Void)
    /// The exchange ended: forget its action.
    func clearDeparture()
}
