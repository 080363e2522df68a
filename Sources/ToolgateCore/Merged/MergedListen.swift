/// One `subscriptions/listen` stream at the merged endpoint (revision 2026-07-28): every server's listen stream as
/// one. The agent sees a single acknowledgment first (the union of what the servers honor, sent once every server
/// acknowledged or ended), then the servers' events, and one final result once every server's stream has ended.
public struct MergedListen: Sendable {
    public let id: JSONValue
    private var unacknowledged: Set<String>
    private var honored: JSONValue = .object([:])
    /// The first acknowledgment as a server sent it: the merged one keeps its shape (`_meta`, the subscription id).
    private var firstAcknowledgment: JSONObject?
    private var acknowledged = false
    /// Events that arrived before the merged acknowledgment could be sent.
    private var held: [JSONValue] = []
    private var final: JSONValue?

    static let acknowledgment = "notifications/subscriptions/acknowledged"

    public init(id: JSONValue, servers: [String]) {
        self.id = id
        unacknowledged = Set(servers)
    }

    /// What the agent gets for one message of `server`'s stream.
    public mutating func receive(_ message: JSONValue, from server: String) -> [JSONValue] {
        switch message["method"]?.stringValue {
        case Self.acknowledgment?:
            if let notifications = message["params"]?["notifications"] {
                honored = MergedHandshake.union(honored, notifications)
            }
            if firstAcknowledgment == nil { firstAcknowledgment = message.objectValue }
            unacknowledged.remove(server)
            return release()
        case nil where message["id"] == id:
            if final == nil { final = message }
            return []
        default:
            guard acknowledged else {
                held.append(message)
                return []
            }
            return [message]
        }
    }

    /// `server`'s stream ended, acknowledged or not.
    public mutating func ended(_ server: String) -> [JSONValue] {
        unacknowledged.remove(server)
        return release()
    }

    /// Every stream ended: what is still owed, and the one final answer.
    public mutating func finish() -> [JSONValue] {
        unacknowledged.removeAll()
        var out = release()
        if acknowledged {
            out.append(final ?? JSONRPCResponse.result(id: id, .object([:])))
        } else {
            out.append(final ?? JSONRPCResponse.error(
                id: id, code: .internalError, message: "no server behind this endpoint kept a subscriptions/listen stream"))
        }
        return out
    }

    private mutating func release() -> [JSONValue] {
        guard !acknowledged, unacknowledged.isEmpty, var acknowledgment = firstAcknowledgment else { return [] }
        acknowledged = true
        var params = acknowledgment["params"]?.objectValue ?? JSONObject()
        params["notifications"] = honored
        acknowledgment["params"] = .object(params)
        defer { held = [] }
        return [.object(acknowledgment)] + held
    }
}
