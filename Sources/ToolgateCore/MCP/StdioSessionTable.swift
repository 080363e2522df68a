/// Which stdio server process serves a request, and which sessions toolgate issued to which grant, as a state machine
/// with no I/O (DESIGN.md section 3, "A stdio upstream shared by several clients"). toolgate itself answers a stdio
/// upstream's `initialize` and issues its session ids, so this table is the only record of who holds a session: a
/// session header is a client's identity only for the grant it was issued to.
///
/// Under `shared` isolation one process serves everyone and the table only tells clients apart. Under `session`,
/// each session gets a process of its own, and requests without a session get one per grant; processes are capped,
/// and stopped when their session is deleted or idle (a process with an exchange in flight is never idle).
public struct StdioSessionTable: Sendable {
    public enum Isolation: String, Sendable, CaseIterable {
        case shared
        case session
    }

    /// One server process.
    public enum ProcessKey: Sendable, Hashable {
        /// The one process of `shared` isolation.
        case shared
        /// A session's own process (`session` isolation).
        case session(String)
        /// The process of a grant's requests without a session (`session` isolation, the per-request era).
        case grant(String)
    }

    /// Where a request goes.
    public struct Route: Sendable, Equatable {
        public let process: ProcessKey
        /// The caller's session, checked: issued to this grant. Nil without one.
        public let session: String?
        /// The session was issued by this request (an `initialize`): its answer carries it.
        public let issued: Bool
        /// The process does not run yet: start it, and `abandon` the route if it does not start.
        public let starts: Bool
    }

    public enum Refusal: Error, Sendable, Equatable {
        /// `session` isolation: the session header names no session of this grant's (made up, deleted, expired, or
        /// another grant's). The client must initialize again.
        case unknownSession
        /// `session` isolation: `--upstream-max-processes` processes run already.
        case full(maximum: Int)
    }

    struct Session: Sendable {
        let grant: String
        var lastUsed: ContinuousClock.Instant
    }

    struct Process: Sendable {
        var lastUsed: ContinuousClock.Instant
        var exchanges = 0
    }

    public let isolation: Isolation
    public let maximumProcesses: Int
    /// How long a session (and its process) may go without a request before it is forgotten (and stopped).
    public let idleLimit: Duration
    /// Most sessions remembered under `shared` isolation (where a session costs no process); the least recently used
    /// is forgotten first.
    public let maximumSharedSessions: Int
    private var sessions: [String: Session] = [:]
    private var processes: [ProcessKey: Process] = [:]

    public init(isolation: Isolation, maximumProcesses: Int, idleLimit: Duration = .seconds(600), maximumSharedSessions: Int = 100_000) {
        self.isolation = isolation
        self.maximumProcesses = maximumProcesses
        self.idleLimit = idleLimit
        self.maximumSharedSessions = maximumSharedSessions
    }

    /// Session ids are toolgate's own: 32 lowercase hex digits. Anything else is not one, and is never hashed or
    /// compared as text from outside.
    public static func isSessionID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// Routes one request. `sessionHeader` is the client's `Mcp-Session-Id`; `newSession` is a fresh id when the
    /// request initializes without a session of its own (the caller draws it at random).
    public mutating func route(grant: String, sessionHeader: String?, newSession: String?, now: ContinuousClock.Instant)
        -> Result<Route, Refusal>
    {
        if let sessionHeader {
            if Self.isSessionID(sessionHeader), let session = sessions[sessionHeader], session.grant == grant {
                sessions[sessionHeader]?.lastUsed = now
                return use(processKey(session: sessionHeader), session: sessionHeader, issued: false, now: now)
            }
            // Not a session of this grant's: under `shared` the request is served as one without a session (it has
            // no client identity beyond its exchange); under `session` there is no process it may reach.
            if isolation == .session { return .failure(.unknownSession) }
        }
        if let newSession {
            let route = use(processKey(session: newSession), session: newSession, issued: true, now: now)
            guard case .success = route else { return route }
            if isolation == .shared, sessions.count >= maximumSharedSessions,
                let oldest = sessions.min(by: { $0.value.lastUsed < $1.value.lastUsed })
            {
                sessions[oldest.key] = nil
            }
            sessions[newSession] = Session(grant: grant, lastUsed: now)
            return route
        }
        return use(isolation == .session ? .grant(grant) : .shared, session: nil, issued: false, now: now)
    }

    /// The process for a route: touched if it runs, recorded (within the cap) if it is to start. The shared process
    /// runs for the sidecar's life and is not counted here.
    private mutating func use(_ key: ProcessKey, session: String?, issued: Bool, now: ContinuousClock.Instant) -> Result<Route, Refusal> {
        guard key != .shared else { return .success(Route(process: key, session: session, issued: issued, starts: false)) }
        if processes[key] != nil {
            processes[key]!.lastUsed = now
            return .success(Route(process: key, session: session, issued: issued, starts: false))
        }
        guard processes.count < maximumProcesses else { return .failure(.full(maximum: maximumProcesses)) }
        processes[key] = Process(lastUsed: now)
        return .success(Route(process: key, session: session, issued: issued, starts: true))
    }

    private func processKey(session: String) -> ProcessKey { isolation == .session ? .session(session) : .shared }

    /// A route whose process did not start (or whose request failed before the session was handed out): forgets
    /// what `route` recorded for it.
    public mutating func abandon(_ route: Route) {
        if route.issued, let session = route.session { sessions[session] = nil }
        if route.starts, route.process != .shared { processes[route.process] = nil }
    }

    /// An exchange began on a process: it is not idle until the exchange ends.
    public mutating func exchangeBegan(on key: ProcessKey) { processes[key]?.exchanges += 1 }

    /// An exchange ended: the process's idle time counts from now.
    public mutating func exchangeEnded(on key: ProcessKey, now: ContinuousClock.Instant) {
        guard processes[key] != nil else { return }
        processes[key]!.exchanges = max(0, processes[key]!.exchanges - 1)
        processes[key]!.lastUsed = now
    }

    /// `DELETE` of a session: forgotten if it is this grant's. Returns the process to stop (`session` isolation),
    /// `.failure` when the session is not this grant's.
    public mutating func delete(session: String, grant: String) -> Result<ProcessKey?, Refusal> {
        guard Self.isSessionID(session), let entry = sessions[session], entry.grant == grant else { return .failure(.unknownSession) }
        sessions[session] = nil
        let key = processKey(session: session)
        guard key != .shared else { return .success(nil) }
        processes[key] = nil
        return .success(key)
    }

    /// Forgets sessions idle for `idleLimit`, and returns the processes to stop: those idle as long with no exchange
    /// in flight. The shared process is never returned.
    public mutating func expire(now: ContinuousClock.Instant) -> [ProcessKey] {
        var stopped: [ProcessKey] = []
        for (key, process) in processes where key != .shared && process.exchanges == 0 && now - process.lastUsed >= idleLimit {
            processes[key] = nil
            if case .session(let id) = key { sessions[id] = nil }
            stopped.append(key)
        }
        for (id, session) in sessions where now - session.lastUsed >= idleLimit {
            let key = processKey(session: id)
            // A session whose process is busy is kept with it.
            if key != .shared, processes[key] != nil { continue }
            sessions[id] = nil
        }
        return stopped.sorted { "\($0)" < "\($1)" }
    }

    /// A process that ended by itself (it crashed and is not restarted): forgotten, with its session.
    public mutating func processEnded(_ key: ProcessKey) {
        processes[key] = nil
        if case .session(let id) = key { sessions[id] = nil }
    }

    /// Processes counted against `maximumProcesses` (none under `shared`).
    public var processCount: Int { processes.count }

    public var sessionCount: Int { sessions.count }
}
