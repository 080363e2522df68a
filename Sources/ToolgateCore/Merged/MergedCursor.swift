/// toolgate's own list cursor at the merged endpoint (DESIGN.md section 10): the servers whose lists have pages
/// left, each with its upstream cursor (nil: its first page). Opaque to the agent, as the spec asks of cursors.
public struct MergedCursor: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let server: String
        public let cursor: String?

        public init(server: String, cursor: String?) {
            self.server = server
            self.cursor = cursor
        }
    }

    /// In servers-file order.
    public let pending: [Entry]

    public init(pending: [Entry]) { self.pending = pending }

    /// The first page: every server's first page.
    public static func first(servers: [String]) -> MergedCursor {
        MergedCursor(pending: servers.map { Entry(server: $0, cursor: nil) })
    }

    static let prefix = "tg1."

    public func encoded() -> String {
        let entries = JSONValue.array(pending.map { .array([.string($0.server), $0.cursor.map(JSONValue.string) ?? .null]) })
        return Self.prefix + Base64.encodeURLSafe(JSONWriter.bytes(entries))
    }

    /// A cursor this endpoint did not make (or one made unreadable) is the agent's error: -32602, as the spec says.
    public init(decoding text: String) throws(JSONRPCFailure) {
        let failure = JSONRPCFailure(.invalidParams, "invalid cursor: use the nextCursor of the previous page, or none")
        guard text.utf8.starts(with: Self.prefix.utf8), text.utf8.count < 64 << 10,
            let bytes = Base64.decode(text.dropFirst(Self.prefix.count)),
            case .array(let items)? = try? JSONParser.parse(bytes)
        else { throw failure }
        var entries: [Entry] = []
        for item in items {
            guard case .array(let pair) = item, pair.count == 2, case .string(let server) = pair[0],
                // A server named twice would be asked twice: a forged cursor must not multiply upstream requests.
                !entries.contains(where: { $0.server == server })
            else { throw failure }
            switch pair[1] {
            case .null: entries.append(Entry(server: server, cursor: nil))
            case .string(let cursor): entries.append(Entry(server: server, cursor: cursor))
            default: throw failure
            }
        }
        guard !entries.isEmpty else { throw failure }
        pending = entries
    }
}

