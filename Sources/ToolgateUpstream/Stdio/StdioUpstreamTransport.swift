import Foundation
import Synchronization
import ToolgateCore

/// The upstream as a program toolgate runs (`--upstream-command`). To the proxy it is one more `UpstreamTransport`,
/// so everything `/mcp` does (filtering, limits, refunds, audit) applies unchanged. toolgate answers the clients'
/// `initialize` itself and issues their session ids, so it alone knows which client a session is: a
/// `StdioSessionTable` records them per grant and picks the program that serves each request (DESIGN.md section 3):
/// under `shared` isolation one program serves everyone; under `session`, each session has its own, and requests
/// without a session one per grant, capped and stopped on `DELETE` or when idle.
public final class StdioUpstreamTransport: UpstreamTransport {
    public struct Configuration: Sendable {
        /// The command line as the user wrote it; run by `/bin/sh -c`.
        public var command: String
        public var environment: [String: String]
        /// How long the program has to exit after its stdin closes, and again after SIGTERM.
        /// Each step of stopping a program (stdin closed, then SIGTERM, then SIGKILL) waits this long. Under the 2 s an
        /// MCP client gives toolgate itself before killing it, so a slow server cannot make the client kill toolgate.
        public var shutdownGrace: Duration
        /// How long the program has to answer `initialize`.
        public var initializeTimeout: Duration
        /// Where the user sets `initializeTimeout`, for the message when it runs out.
        public var initializeTimeoutSetting = "--upstream-start-timeout"
        public var maximumLineBytes: Int
        /// Longest wait for the first thing the program says for an exchange (`--upstream-headers-timeout`).
        public var headersTimeout: Duration
        /// Longest silence between the things it says for an exchange (`--upstream-idle-timeout`).
        public var idleTimeout: Duration
        /// `--upstream-isolation`.
        public var isolation: StdioSessionTable.Isolation
        /// `--upstream-max-processes`: the cap under `session` isolation.
        public var maximumProcesses: Int
        /// How long a session (and under `session` isolation its program) may go without a request.
        public var sessionIdleLimit: Duration

        public init(
            command: String, environment: [String: String], shutdownGrace: Duration = .seconds(1),
            initializeTimeout: Duration = .seconds(30), maximumLineBytes: Int = 32 << 20, headersTimeout: Duration = .seconds(300),
            idleTimeout: Duration = .seconds(300), isolation: StdioSessionTable.Isolation = .shared, maximumProcesses: Int = 32,
            sessionIdleLimit: Duration = .seconds(600)
        ) {
            self.command = command
            self.environment = environment
            self.shutdownGrace = shutdownGrace
            self.initializeTimeout = initializeTimeout
            self.maximumLineBytes = maximumLineBytes
            self.headersTimeout = headersTimeout
            self.idleTimeout = idleTimeout
            self.isolation = isolation
            self.maximumProcesses = maximumProcesses
            self.sessionIdleLimit = sessionIdleLimit
        }
    }

    /// What the wiring logs, counts and shows in `/readyz`.
    public enum Event: Sendable {
        case started(pid: Int32)
        case ready(serverName: String)
        /// The program stopped; it is started again after `restartIn` (nil: it was stopped on purpose).
        case exited(description: String, restartIn: Duration?)
        case launchFailed(description: String, restartIn: Duration)
        case stderr(String)
        /// A line on stdout that is not JSON: skipped.
        case notJSON(prefix: String)
        /// A client's answer to a request of the server's was refused (HTTP 400): it was not that client's to answer.
        case refusedResponse(StdioMultiplexer.ResponseRefusal)
        /// `session` isolation: a new session was refused, `--upstream-max-processes` programs running.
        case processCapReached(maximum: Int)
    }

    private struct State {
        var table: StdioSessionTable
        var programs: [StdioSessionTable.ProcessKey: Task<StdioProgram?, Never>] = [:]
        var stopping = false
    }

    public let configuration: Configuration
    private let state: Mutex<State>
    private let onEvent: @Sendable (Event) -> Void
    /// The one program of `shared` isolation.
    private let shared: StdioProgram?
    private let clock: @Sendable () -> ContinuousClock.Instant

    public init(
        configuration: Configuration, onEvent: @escaping @Sendable (Event) -> Void = { _ in },
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.configuration = configuration
        self.onEvent = onEvent
        self.clock = clock
        state = Mutex(
            State(
                table: StdioSessionTable(
                    isolation: configuration.isolation, maximumProcesses: configuration.maximumProcesses,
                    idleLimit: configuration.sessionIdleLimit)))
        shared = configuration.isolation == .shared ? StdioProgram(configuration: configuration, onEvent: onEvent) : nil
    }

    /// Nil while the upstream serves; otherwise why not, for `/readyz`.
    public var problem: String? { shared?.problem }

    /// Starts the program and waits for its `initialize` answer (under `session` isolation, a trial run that is
    /// stopped again). Throws a message fit for the user when it never answers: the first start of `serve` fails with
    /// it, rather than serving a sidecar whose upstream cannot run.
    public func start() async throws(StdioUpstreamFailure) {
        if let shared {
            try await shared.start()
            return
        }
        let trial = StdioProgram(configuration: configuration, onEvent: onEvent)
        do {
            try await trial.start()
        } catch {
            await trial.stop()
            throw error
        }
        await trial.stop()
    }

    /// Keeps the upstream running until `stop`: restarts the shared program whenever it exits, forgets idle
    /// sessions, and under `session` isolation stops their programs.
    public func superviseUntilStopped() async {
        await withTaskGroup(of: Void.self) { group in
            if let shared { group.addTask { await shared.superviseUntilStopped() } }
            group.addTask {
                var ticks = 0
                while !self.state.withLock({ $0.stopping }) {
                    if ticks % 20 == 0 { await self.reapIdle() }
                    ticks += 1
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    /// Stops the programs of sessions idle for the idle limit, now.
    func reapIdle() async {
        let now = clock()
        let stopped = state.withLock { state in
            state.table.expire(now: now).compactMap { state.programs.removeValue(forKey: $0) }
        }
        for program in stopped { await program.value?.stop() }
    }

    /// Stops every program: stdin closed, then SIGTERM, then SIGKILL (each after `shutdownGrace`).
    public func stop() async {
        let programs = state.withLock { state in
            state.stopping = true
            defer { state.programs = [:] }
            return Array(state.programs.values)
        }
        await shared?.stop()
        for program in programs { await program.value?.stop() }
    }

    /// Programs running under `session` isolation.
    public var processCount: Int { state.withLock { $0.table.processCount } }

    // MARK: Exchanges

    public func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        let sessionHeader = request.headers.first { $0.name.lowercased() == "mcp-session-id" }?.value
        let grant = request.grant ?? ""
        switch request.method {
        case .get:
            // No stream of its own: what the program says outside a call cannot be told for one client.
            return StdioProgram.response(405, headers: [HTTPHeader("Allow", "POST, DELETE")], body: [])
        case .delete:
            return await delete(session: sessionHeader, grant: grant)
        case .post:
            break
        }
        let initializes = Self.initializes(request.body)
        let routed = state.withLock { state -> Result<StdioSessionTable.Route, StdioSessionTable.Refusal>? in
            guard !state.stopping else { return nil }
            let newSession = initializes && (sessionHeader == nil || state.table.isolation == .shared) ? Self.newSessionID() : nil
            // A known session re-initializing keeps its session.
            let route = state.table.route(grant: grant, sessionHeader: sessionHeader, newSession: newSession, now: clock())
            if case .success(let r) = route { state.table.exchangeBegan(on: r.process) }
            return route
        }
        let route: StdioSessionTable.Route
        switch routed {
        case nil:
            throw UpstreamError(code: .unreachable, message: "upstream command not ready: toolgate is stopping", requestSent: false)
        case .failure(.unknownSession)?:
            return Self.refusal(
                404, code: .invalidRequest,
                message: "unknown session: Mcp-Session-Id names no session of this client's (deleted, expired or never issued); initialize again")
        case .failure(.full(let maximum))?:
            onEvent(.processCapReached(maximum: maximum))
            return Self.refusal(
                503, code: .internalError,
                message: "toolgate runs \(maximum) upstream command processes already (--upstream-max-processes); try again later",
                headers: [HTTPHeader("Retry-After", "10")])
        case .success(let r)?:
            route = r
        }
        let ended: @Sendable () -> Void = { [weak self] in
            guard let self else { return }
            self.state.withLock { $0.table.exchangeEnded(on: route.process, now: self.clock()) }
        }
        guard let program = await program(for: route) else {
            ended()
            state.withLock { $0.table.abandon(route) }
            throw UpstreamError(
                code: .unreachable, message: "upstream command not ready: its process for this session did not start",
                requestSent: false)
        }
        let caller = StdioMultiplexer.Caller(grant: grant, session: route.session)
        do {
            return try await program.post(request, caller: caller, issuedSession: route.issued ? route.session : nil, onFinish: ended)
        } catch {
            if route.issued { state.withLock { $0.table.abandon(route) } }
            throw error
        }
    }

    /// The program of a route: the shared one, or the route's own, started on first use.
    private func program(for route: StdioSessionTable.Route) async -> StdioProgram? {
        if route.process == .shared { return shared }
        let task = state.withLock { state -> Task<StdioProgram?, Never>? in
            if let running = state.programs[route.process] { return running }
            guard !state.stopping else { return nil }
            let configuration = configuration
            let onEvent = onEvent
            let task = Task { () -> StdioProgram? in
                let program = StdioProgram(configuration: configuration, onEvent: onEvent)
                do throws(StdioUpstreamFailure) {
                    try await program.start()
                } catch {
                    onEvent(.launchFailed(description: error.message, restartIn: .zero))
                    await program.stop()
                    return nil
                }
                Task { await program.superviseUntilStopped() }
                return program
            }
            state.programs[route.process] = task
            return task
        }
        guard let task else { return nil }
        let program = await task.value
        if program == nil {
            state.withLock { state in
                state.programs[route.process] = nil
                state.table.processEnded(route.process)
            }
        }
        return program
    }

    /// `DELETE` of a session: forgotten when it is this grant's, and under `session` isolation its program stopped.
    private func delete(session: String?, grant: String) async -> UpstreamResponse {
        guard let session else { return StdioProgram.response(200, headers: [], body: []) }
        let outcome = state.withLock { state -> Result<Task<StdioProgram?, Never>?, StdioSessionTable.Refusal> in
            state.table.delete(session: session, grant: grant).map { key in key.flatMap { state.programs.removeValue(forKey: $0) } }
        }
        switch outcome {
        case .success(let program):
            // Stopped in the background: its stdin closes at once, and the client need not wait for the exit.
            if let program { Task { await program.value?.stop() } }
            return StdioProgram.response(200, headers: [], body: [])
        case .failure:
            guard configuration.isolation == .session else { return StdioProgram.response(200, headers: [], body: []) }
            return Self.refusal(404, code: .invalidRequest, message: "unknown session: Mcp-Session-Id names no session of this client's")
        }
    }

    static func refusal(_ status: Int, code: JSONRPCErrorCode, message: String, headers: [HTTPHeader] = []) -> UpstreamResponse {
        StdioProgram.response(
            status, headers: headers + [HTTPHeader("Content-Type", "application/json")],
            body: JSONWriter.bytes(JSONRPCResponse.error(id: nil, code: code, message: message)))
    }

    /// Whether a POST body holds an `initialize` request (alone or in a batch).
    static func initializes(_ body: [UInt8]) -> Bool {
        guard let value = try? JSONParser.parse(body) else { return false }
        return (value.arrayValue ?? [value]).contains { $0["method"]?.stringValue == "initialize" && $0["id"] != nil }
    }

    /// 128 random bits as 32 hex digits: a session id no client can guess.
    static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        for _ in 0..<2 {
            let part = String(generator.next() as UInt64, radix: 16)
            text += String(repeating: "0", count: 16 - part.count) + part
        }
        return text
    }
}
