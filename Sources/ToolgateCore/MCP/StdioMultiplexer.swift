/// Many HTTP clients, one stdio MCP server (`--upstream-command`), as a state machine with no I/O. toolgate owns the
/// server's one MCP session; each client exchange's requests get ids of toolgate's own (`tg-N`), so answers and
/// progress (by rewritten `progressToken`) reach the right client. The server's own requests (sampling, elicitation,
/// roots) go to the one exchange with calls in flight, or are refused when none can be told, and only the caller that
/// exchange belongs to may answer them; only a request's own caller may cancel it. A notification no one client can
/// be told for goes to none, except the `list_changed` ones, which go to every exchange (DESIGN.md section 3).
///
/// The server is initialized in the handshake era. A client of the per-request era (2026-07-28) is served all the
/// same: the reserved `io.modelcontextprotocol/*` envelope keys leave its requests' `_meta`, and its answers get
/// `resultType: "complete"` and the server's info, as that era's results carry them.
public struct StdioMultiplexer: Sendable {
    /// One client exchange (one POST); what the server says for its requests goes back on that exchange.
    public typealias ClientID = UInt64

    /// Who sent an exchange, as far as the transport can tell: the grant, and the session toolgate issued to that
    /// grant (nil when there is none: the per-request era, or a client that left the header out). Without a session,
    /// a caller is known only within its one exchange.
    public struct Caller: Sendable, Hashable {
        public let grant: String
        public let session: String?

        public init(grant: String, session: String?) {
            self.grant = grant
            self.session = session
        }

        /// Whether a message on another exchange can be told to come from this caller: only by a session of the
        /// same grant, never by a missing one.
        func isSameClient(as other: Caller) -> Bool {
            grant == other.grant && session != nil && session == other.session
        }
    }

    /// Why a client's answer to a request of the server's is not passed on.
    public enum ResponseRefusal: String, Error, Sendable, Equatable {
        /// The request was routed to another client (another grant, another session, or one without a session).
        case otherClient = "other_client"
        /// No request of the server's is waiting under that id.
        case unknownRequest = "unknown_request"
    }

    /// What becomes of a client's notification.
    public struct NotificationOutcome: Sendable, Equatable {
        /// For the server; nil when it is not for the server.
        public var toServer: JSONValue?
        /// Answers that end exchanges now (a cancelled request's error: the server will not answer it).
        public var deliveries: [Delivery] = []
    }

    /// Notifications every client may receive: what they announce is no one client's, and the lists that follow are
    /// filtered as always.
    public static let broadcastNotifications: Set<String> = [
        "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed",
    ]

    public enum Delivery: Sendable, Equatable {
        /// A message for a client exchange.
        case client(ClientID, JSONValue)
        /// A message for the server (an error answer to a request of its own that no client can take).
        case server(JSONValue)
    }

    struct Pending: Sendable {
        let client: ClientID
        let caller: Caller
        let originalID: JSONValue
        let originalToken: JSONValue?
        let token: String?
        let perRequestEra: Bool
        let method: String
    }

    /// Results of these methods are cacheable in the per-request era, which requires `cacheScope` and `ttlMs`.
    public static let cacheableMethods: Set<String> = [
        "tools/list", "prompts/list", "resources/list", "resources/templates/list", "server/discover",
    ]

    /// Makes a handshake-era result one of the per-request era: `resultType`, the server's info, and for a list the
    /// caching fields, set to "do not cache" (a policy reload may change what a list holds).
    public static func perRequestResult(_ result: JSONObject, method: String, serverInfo: JSONValue?) -> JSONObject {
        var result = result
        if result["resultType"] == nil { result["resultType"] = "complete" }
        if cacheableMethods.contains(method) {
            if result["cacheScope"] == nil { result["cacheScope"] = "private" }
            if result["ttlMs"] == nil { result["ttlMs"] = 0 }
        }
        if let serverInfo {
            var meta = result["_meta"]?.objectValue ?? JSONObject()
            if meta[serverInfoKey] == nil { meta[serverInfoKey] = serverInfo }
            result["_meta"] = .object(meta)
        }
        return result
    }

    private var pending: [String: Pending] = [:]
    /// Rewritten progress token → the upstream id of its request.
    private var tokens: [String: String] = [:]
    /// Ids toolgate gave the server's requests when passing them to a client → the server's own ids.
    private var serverRequests: [String: (client: ClientID, caller: Caller, id: JSONValue)] = [:]
    private var nextID: UInt64 = 0
    /// The server's `serverInfo`, which per-request-era results carry in `_meta`.
    public var serverInfo: JSONValue?

    public init(serverInfo: JSONValue? = nil) { self.serverInfo = serverInfo }

    static let envelopeKeys = [
        "io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientInfo",
        "io.modelcontextprotocol/clientCapabilities", "io.modelcontextprotocol/logLevel",
    ]
    public static let serverInfoKey = "io.modelcontextprotocol/serverInfo"

    private mutating func newID(_ prefix: String) -> String {
        nextID += 1
        return prefix + String(nextID)
    }

    /// A client's request, as the server gets it.
    public mutating func request(_ message: JSONObject, client: ClientID, caller: Caller) -> JSONValue {
        var message = message
        let upstreamID = newID("tg-")
        var params = message["params"]?.objectValue
        var meta = params?["_meta"]?.objectValue
        let perRequestEra = meta?[Self.envelopeKeys[0]] != nil
        var originalToken: JSONValue?
        var token: String?
        if var m = meta {
            for key in Self.envelopeKeys { m[key] = nil }
            if let progress = m["progressToken"] {
                originalToken = progress
                let rewritten = newID("tg-progress-")
                token = rewritten
                tokens[rewritten] = upstreamID
                m["progressToken"] = .string(rewritten)
            }
            meta = m
        }
        if let meta {
            // An emptied `_meta` is removed, never written as `null` (`JSONValue` also reads `nil` as `.null`).
            params?["_meta"] = meta.count == 0 ? JSONValue?.none : .object(meta)
            message["params"] = params.map(JSONValue.object)
        }
        pending[upstreamID] = Pending(
            client: client, caller: caller, originalID: message["id"] ?? .null, originalToken: originalToken, token: token,
            perRequestEra: perRequestEra, method: message["method"]?.stringValue ?? "")
        message["id"] = .string(upstreamID)
        return .object(message)
    }

    /// A client's notification, as the server gets it. A cancellation names the client's own request id: it is
    /// matched among the requests of the same caller, by the exchange it came on or by the caller's session (never by
    /// a missing one), and not passed on when nothing matches. A cancelled request's exchange ends at once with an
    /// error for its id: the server drops a cancelled request without an answer.
    public mutating func notification(_ message: JSONObject, client: ClientID, caller: Caller) -> NotificationOutcome {
        switch message["method"]?.stringValue {
        case "notifications/initialized":
            return NotificationOutcome()  // toolgate initialized the server itself
        case "notifications/cancelled":
            guard let id = message["params"]?["requestId"] else { return NotificationOutcome() }
            // The caller first: only its own request ids are ever compared with the id it sent.
            let matches = pending.filter {
                $0.value.caller.grant == caller.grant
                    && ($0.value.client == client || $0.value.caller.isSameClient(as: caller)) && $0.value.originalID == id
            }
            guard matches.count == 1, let match = matches.first else { return NotificationOutcome() }
            let (upstreamID, request) = (match.key, match.value)
            pending[upstreamID] = nil
            if let token = request.token { tokens[token] = nil }
            var message = message
            var params = message["params"]?.objectValue ?? JSONObject()
            params["requestId"] = .string(upstreamID)
            message["params"] = .object(params)
            let ended = JSONRPCResponse.error(
                id: request.originalID, code: .internalError, message: "the request was cancelled; the server will not answer it")
            return NotificationOutcome(toServer: .object(message), deliveries: [.client(request.client, ended)])
        default:
            return NotificationOutcome(toServer: .object(message))
        }
    }

    /// A client's answer to a request of the server's, as the server gets it; refused unless it comes from the
    /// caller the request was routed to. A refused answer leaves the request waiting for its rightful one.
    public mutating func response(_ message: JSONObject, caller: Caller) -> Result<JSONValue, ResponseRefusal> {
        if let refusal = refusal(of: message, caller: caller) { return .failure(refusal) }
        guard let id = message["id"]?.stringValue, let routed = serverRequests.removeValue(forKey: id) else {
            return .failure(.unknownRequest)
        }
        var message = message
        message["id"] = routed.id
        return .success(.object(message))
    }

    /// Why `response` would refuse this answer, without taking it: a POST with several answers is refused whole
    /// or taken whole.
    public func refusal(of message: JSONObject, caller: Caller) -> ResponseRefusal? {
        guard let id = message["id"]?.stringValue, let routed = serverRequests[id] else { return .unknownRequest }
        return routed.caller.isSameClient(as: caller) ? nil : .otherClient
    }

    /// One message from the server.
    public mutating func inbound(_ message: JSONValue) -> [Delivery] {
        guard case .object(var object) = message else { return [] }
        let id = object["id"]
        if object["method"] == nil {
            // An answer: to a client's request.
            guard let key = id?.stringValue, let request = pending.removeValue(forKey: key) else { return [] }
            if let token = request.token { tokens[token] = nil }
            object["id"] = request.originalID
            if request.perRequestEra, case .object(let result)? = object["result"] {
                object["result"] = .object(Self.perRequestResult(result, method: request.method, serverInfo: serverInfo))
            }
            return [.client(request.client, .object(object))]
        }
        if let id {
            // The server's own request: for the one client with calls in flight, if it can answer.
            let clients = Set(pending.values.map(\.client))
            let caller = pending.values.first { $0.client == clients.first }?.caller
            guard clients.count == 1, let client = clients.first, let caller, caller.session != nil else {
                let why =
                    clients.isEmpty
                    ? "no client has a call in flight to send it to"
                    : clients.count > 1
                        ? "\(clients.count) clients have calls in flight and toolgate cannot tell which one this is for"
                        : "the client has no session on which its answer could be told from another client's"
                return [
                    .server(
                        JSONRPCResponse.error(
                            id: id, code: .internalError, message: "toolgate cannot route this request: \(why)"))
                ]
            }
            let routed = newID("tg-server-")
            serverRequests[routed] = (client, caller, id)
            object["id"] = .string(routed)
            return [.client(client, .object(object))]
        }
        // A notification: progress goes to the request's client with its own token; a list change to every client;
        // anything else cannot be told for one client, and goes nowhere.
        if object["method"]?.stringValue == "notifications/progress", let token = object["params"]?["progressToken"]?.stringValue,
            let upstreamID = tokens[token], let request = pending[upstreamID]
        {
            var params = object["params"]?.objectValue ?? JSONObject()
            params["progressToken"] = request.originalToken ?? .null
            object["params"] = .object(params)
            return [.client(request.client, .object(object))]
        }
        guard let method = object["method"]?.stringValue, Self.broadcastNotifications.contains(method) else { return [] }
        return Set(pending.values.map(\.client)).sorted().map { .client($0, .object(object)) }
    }

    /// The server is gone: each request in flight gets a -32603 error on its client's exchange.
    public mutating func serverExited(_ reason: String) -> [Delivery] {
        let deliveries = pending.sorted { $0.key < $1.key }.map { _, request in
            Delivery.client(request.client, JSONRPCResponse.error(id: request.originalID, code: .internalError, message: reason))
        }
        pending = [:]
        tokens = [:]
        serverRequests = [:]
        return deliveries
    }

    /// A client exchange ended before its answers (the agent left): its requests are cancelled at the server.
    public mutating func clientGone(_ client: ClientID) -> [JSONValue] {
        var cancellations: [JSONValue] = []
        for (upstreamID, request) in pending.sorted(by: { $0.key < $1.key }) where request.client == client {
            pending[upstreamID] = nil
            if let token = request.token { tokens[token] = nil }
            cancellations.append([
                "jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": ["requestId": .string(upstreamID), "reason": "the client went away"],
            ])
        }
        serverRequests = serverRequests.filter { $0.value.client != client }
        return cancellations
    }

    /// Requests of this client exchange still waiting for their answer.
    public func pendingCount(client: ClientID) -> Int { pending.values.reduce(0) { $0 + ($1.client == client ? 1 : 0) } }

    /// Requests in flight at the server, over all clients.
    public var pendingCount: Int { pending.count }
}
