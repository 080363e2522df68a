/// What a draining sidecar still serves (DESIGN.md section 2, "Drain"). An agent's step is several requests (the
/// official SDK follows a `tools/call` with a `tools/list` and ends its session with `DELETE`), so only what starts new
/// work is refused: `initialize` outside a session, and the per-request era's `server/discover`.
public enum DrainAdmission {
    /// Whether a draining sidecar refuses this message.
    public static func refuses(_ message: JSONRPCMessage, hasSession: Bool) -> Bool {
        guard let method = message.method else { return false }
        if method.isExactly("server/discover") { return true }
        return !hasSession && message.known == .initialize
    }

    /// Whether a draining sidecar refuses this body: any element it would refuse on its own refuses the batch, since a
    /// batch is answered whole.
    public static func refuses(_ body: JSONRPCBody, hasSession: Bool) -> Bool {
        switch body {
        case .single(let message): refuses(message, hasSession: hasSession)
        case .batch(let messages): messages.contains { refuses($0, hasSession: hasSession) }
        }
    }
}
