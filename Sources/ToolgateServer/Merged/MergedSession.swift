import Synchronization
import ToolgateCore

/// One agent session at the merged endpoint (DESIGN.md section 10): the upstream session each server opened at
/// `initialize`, and the ids that must find their way back to the right server.
final class MergedSession: Sendable {
    struct Upstream: Sendable {
        /// The server's `Mcp-Session-Id`, when it issued one.
        let session: String?
        /// The revision this server agreed to; its requests carry it.
        let protocolVersion: String?
        let capabilities: JSONValue
    }

    let id: String
    let grant: String
    /// The agent's `initialize` and its id: a server left out at the start is opened with them when a call needs it.
    let opening: [UInt8]
    let openingID: JSONValue

    /// Servers that answered `initialize`, at the start or since; the others are left out of this session.
    var upstreams: [String: Upstream] { state.withLock { $0.upstreams } }

    private struct State {
        var upstreams: [String: Upstream]
        /// When each server left out was last tried again.
        var retried: [String: ContinuousClock.Instant] = [:]
        /// The agent's requests in flight, by id (as JSON text), and the server each went to: a cancellation goes there.
        var inFlight: [String: String] = [:]
        /// Requests servers sent the agent, under the id the agent saw, with the server and its own id.
        var serverRequests: [String: (server: String, id: JSONValue)] = [:]
        var nextServerRequest = 1
    }

    private let state: Mutex<State>

    init(id: String, grant: String, upstreams: [String: Upstream], opening: [UInt8], openingID: JSONValue) {
        self.id = id
        self.grant = grant
        self.opening = opening
        self.openingID = openingID
        state = Mutex(State(upstreams: upstreams))
    }

    func adopt(_ upstream: Upstream, for server: String) {
        state.withLock { $0.upstreams[server] = upstream }
    }

    /// A server that stays down is tried again at most every `retryInterval`, not on every call.
    func mayRetry(_ server: String, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            if let last = state.retried[server], now - last < Self.retryInterval { return false }
            state.retried[server] = now
            return true
        }
    }

    static let retryInterval = Duration.seconds(5)

    func started(_ requestID: JSONValue, server: String) {
        let key = JSONWriter.string(requestID)
        state.withLock { $0.inFlight[key] = server }
    }

    func ended(_ requestID: JSONValue) {
        let key = JSONWriter.string(requestID)
        state.withLock { _ = $0.inFlight.removeValue(forKey: key) }
    }

    func server(handling requestID: JSONValue) -> String? {
        let key = JSONWriter.string(requestID)
        return state.withLock { $0.inFlight[key] }
    }

    /// Servers number their own requests, so two may send the same id: the agent sees one of toolgate's instead.
    /// Bounded: an agent that never answers cannot grow the table past `maximumServerRequests`.
    func agentID(forServerRequest id: JSONValue, server: String) -> JSONValue {
        state.withLock { state in
            if state.serverRequests.count >= Self.maximumServerRequests, let oldest = state.serverRequests.keys.min(by: {
                (Int($0.dropFirst(Self.idPrefix.count)) ?? 0) < (Int($1.dropFirst(Self.idPrefix.count)) ?? 0)
            }) {
                state.serverRequests[oldest] = nil
            }
            let mapped = Self.idPrefix + String(state.nextServerRequest)
            state.nextServerRequest += 1
            state.serverRequests[mapped] = (server, id)
            return .string(mapped)
        }
    }

    /// The server and its own id for the agent's answer to a server request; each answer is routed once.
    func serverRequest(answeredBy id: JSONValue) -> (server: String, id: JSONValue)? {
        guard case .string(let text) = id else { return nil }
        return state.withLock { $0.serverRequests.removeValue(forKey: text) }
    }

    static let idPrefix = "toolgate-"
    static let maximumServerRequests = 1024
}

/// The merged endpoint's sessions, each bound to the grant that opened it.
final class MergedSessionTable: Sendable {
    private let sessions = Mutex([String: MergedSession]())
    /// Past this, the oldest-created session is dropped (its agent then gets 404 and opens a new one).
    let capacity: Int
    private let order = Mutex([String]())

    init(capacity: Int = 10_000) { self.capacity = capacity }

    func add(_ session: MergedSession) {
        let evicted: String? = order.withLock { order in
            order.append(session.id)
            return order.count > capacity ? order.removeFirst() : nil
        }
        sessions.withLock { table in
            table[session.id] = session
            if let evicted { table[evicted] = nil }
        }
    }

    /// Only the grant that opened a session may use it.
    func session(_ id: String, grant: String) -> MergedSession? {
        sessions.withLock { $0[id] }.flatMap { $0.grant == grant ? $0 : nil }
    }

    func remove(_ id: String) {
        sessions.withLock { _ = $0.removeValue(forKey: id) }
        order.withLock { $0.removeAll { $0 == id } }
    }
}
