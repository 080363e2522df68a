/// One server-sent event, with the exact bytes it arrived as so an unchanged event is re-emitted verbatim.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String?
    public var data: String
    public var retry: Int?
    /// The event block as received, through its terminating blank line; empty for events toolgate makes.
    public var raw: [UInt8]

    public init(id: String? = nil, event: String? = nil, data: String, retry: Int? = nil, raw: [UInt8] = []) {
        self.id = id
        self.event = event
        self.data = data
        self.retry = retry
        self.raw = raw
    }

    /// Wire form. The raw bytes when the event is unchanged; otherwise a fresh block keeping id and type.
    public func encoded() -> [UInt8] {
        if !raw.isEmpty { return raw }
        var out: [UInt8] = []
        if let event { out += Array("event: \(event)\n".utf8) }
        if let id { out += Array("id: \(id)\n".utf8) }
        if let retry { out += Array("retry: \(retry)\n".utf8) }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) {
            out += Array("data: ".utf8) + Array(line.utf8) + [0x0A]
        }
        out.append(0x0A)
        return out
    }

    /// The one-event stream toolgate answers with when the client asked for SSE.
    public static func message(_ json: JSONValue) -> SSEEvent {
        SSEEvent(event: "message", data: JSONWriter.string(json))
    }
}
