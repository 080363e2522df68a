#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import ToolgateCore

/// One run of the stdio upstream's program (`--upstream-command`), speaking newline-delimited JSON-RPC on its stdin
/// and stdout (the MCP stdio transport). toolgate owns the program's one MCP session: it initializes it, answers each
/// client's `initialize` (and `server/discover`) from the program's own answer, and maps every client's requests
/// through a `StdioMultiplexer`. A POST's requests come back as an event stream of what the program says for them.
/// `StdioUpstreamTransport` decides which program serves which client (one for all, or one per session).
///
/// If the program exits, calls in flight get a -32603 error (the tool may have run: no refund); a request that finds
/// it gone is refused as undelivered (refunded). It is restarted with backoff (100 ms doubling to 10 s) until stopped.
final class StdioProgram: Sendable {
    typealias Configuration = StdioUpstreamTransport.Configuration
    typealias Event = StdioUpstreamTransport.Event

    private struct Client: Sendable {
        let continuation: AsyncStream<[UInt8]>.Continuation
    }

    private struct State: Sendable {
        var multiplexer = StdioMultiplexer()
        var child: ChildProcess?
        /// The program's answer to toolgate's `initialize`: what clients are answered from. Nil while not ready.
        var initialized: JSONObject?
        var initializeWaiter: CheckedContinuation<JSONObject?, Never>?
        var clients: [StdioMultiplexer.ClientID: Client] = [:]
        var nextClient: StdioMultiplexer.ClientID = 0
        var problem: String? = "the upstream command has not started yet"
        var stopping = false
        var incarnation = 0
        /// The last incarnation whose stdout has closed: its `initialize` will never be answered.
        var outputEnded = 0
        /// The last incarnation whose `initialize` wait ended by toolgate's start timeout, not by the program.
        var startTimedOut = 0
    }

    let configuration: Configuration
    private let state = Mutex(State())
    private let onEvent: @Sendable (Event) -> Void

    init(configuration: Configuration, onEvent: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.configuration = configuration
        self.onEvent = onEvent
    }

    /// Nil while the program serves; otherwise why not, for `/readyz`.
    var problem: String? { state.withLock { $0.problem } }

    // MARK: Running the program

    /// Starts the program and waits for its `initialize` answer. Throws a message fit for the user when it never
    /// answers: the first start of `serve` fails with it, rather than serving a sidecar whose upstream cannot run.
    func start() async throws(StdioUpstreamFailure) {
        if let failure = await launchOnce() { throw failure }
    }

    /// Keeps the program running until `stop`: restarts it with backoff whenever it exits.
    func superviseUntilStopped() async {
        var backoff: Duration = .milliseconds(100)
        while !state.withLock({ $0.stopping }) {
            if state.withLock({ $0.child == nil }) {
                if let failure = await launchOnce() {
                    if state.withLock({ $0.stopping }) { return }
                    onEvent(.launchFailed(description: failure.message, restartIn: backoff))
                    state.withLock { $0.problem = "\(failure.message); restarting in \(backoff)" }
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(10))
                    continue
                }
            }
            // Wait for the running program to end.
            let child = state.withLock { $0.child }
            guard let child else { continue }
            let startedAt = ContinuousClock.now
            while !child.hasExited, !state.withLock({ $0.stopping }) {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if state.withLock({ $0.stopping }) { return }
            // A program that served for a while starts over at the shortest backoff.
            if ContinuousClock.now - startedAt > .seconds(10) { backoff = .milliseconds(100) }
            let description = ChildProcess.describe(status: child.exitStatus ?? 0)
            onEvent(.exited(description: description, restartIn: backoff))
            state.withLock { $0.problem = "the upstream command \(description); restarting in \(backoff)" }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(10))
            state.withLock { $0.child = nil }
        }
    }

    /// Closes the program's stdin, then SIGTERM, then SIGKILL (each after `shutdownGrace`); nothing of it is left.
    func stop() async {
        let child = state.withLock { state -> ChildProcess? in
            state.stopping = true
            state.problem = "toolgate is stopping"
            return state.child
        }
        await child?.stop(grace: configuration.shutdownGrace)
        if let child { onEvent(.exited(description: ChildProcess.describe(status: child.exitStatus ?? 0), restartIn: nil)) }
    }

    private func launchOnce() async -> StdioUpstreamFailure? {
        let child: ChildProcess
        do {
            child = try ChildProcess.launch(
                ["/bin/sh", "-c", configuration.command], environment: configuration.environment,
                maximumLineBytes: configuration.maximumLineBytes)
        } catch {
            return StdioUpstreamFailure(message: error.description)
        }
        onEvent(.started(pid: child.pid))
        let incarnation = state.withLock { state -> Int in
            state.incarnation += 1
            state.child = child
            state.initialized = nil
            state.multiplexer = StdioMultiplexer()
            return state.incarnation
        }
        let stderrTail = StderrTail()
        Task { [onEvent] in
            for await line in child.errorLines {
                let text = String(decoding: line, as: UTF8.self)
                stderrTail.append(text)
                onEvent(.stderr(text))
            }
            stderrTail.finish()
        }
        Task { await self.readOutput(of: child, incarnation: incarnation) }
        let initialize: JSONValue = [
            "jsonrpc": "2.0", "id": "tg-initialize", "method": "initialize",
            "params": [
                "protocolVersion": .string(Self.handshakeVersion),
                "capabilities": ["elicitation": [:], "sampling": [:], "roots": ["listChanged": false]],
                "clientInfo": ["name": "toolgate", "version": "1"],
            ],
        ]
        let answer: JSONObject? = await withCheckedContinuation { waiter in
            let ended = state.withLock { state -> Bool in
                guard state.outputEnded != incarnation else { return true }
                state.initializeWaiter = waiter
                return false
            }
            if ended {
                waiter.resume(returning: nil)  // it is gone already: nothing will answer
                return
            }
            do {
                try child.write(line: JSONWriter.bytes(initialize))
            } catch {
                resumeInitializeWaiter(with: nil, incarnation: incarnation)
            }
            let timeout = configuration.initializeTimeout
            Task {
                try? await Task.sleep(for: timeout)
                self.resumeInitializeWaiter(with: nil, incarnation: incarnation, timedOut: true)
            }
        }
        guard let answer, answer["protocolVersion"] != nil else {
            // Decided before toolgate stops it: a program stopped for the timeout must not read as one that died.
            let timedOut = state.withLock { $0.startTimedOut == incarnation }
            await child.stop(grace: .milliseconds(200))
            _ = await child.waitForExit(timeout: .seconds(1))
            state.withLock { if $0.incarnation == incarnation { $0.child = nil } }
            let what: String
            if timedOut {
                what = "did not answer initialize within \(Self.seconds(configuration.initializeTimeout)), toolgate's start timeout (\(configuration.initializeTimeoutSetting)), so toolgate stopped it"
            } else if answer != nil {
                what = "answered initialize without a protocolVersion"
            } else {
                what = "\(child.hasExited ? ChildProcess.describe(status: child.exitStatus ?? 0) : "closed its stdout") before answering initialize"
            }
            // Its last words (`sh: …: not found`) may still be on their way through the stderr pipe: wait for the
            // pipe's end, a second at most (a process it started may hold the pipe open).
            for _ in 0..<20 where !stderrTail.isFinished { try? await Task.sleep(for: .milliseconds(50)) }
            let tail = stderrTail.lines.suffix(3).joined(separator: " | ")
            return StdioUpstreamFailure(
                message: "the upstream command (\(configuration.command)) \(what)" + (tail.isEmpty ? "" : "; its stderr: \(tail)"))
        }
        try? child.write(line: JSONWriter.bytes(["jsonrpc": "2.0", "method": "notifications/initialized"]))
        state.withLock { state in
            state.initialized = answer
            state.multiplexer.serverInfo = answer["serverInfo"]
            state.problem = nil
        }
        onEvent(.ready(serverName: answer["serverInfo"]?["name"]?.stringValue ?? "?"))
        return nil
    }

    /// Ends the wait for `incarnation`'s `initialize` answer; a later incarnation's wait is left alone (a timer or
    /// a stdout that closes late must not fail the next start).
    private func resumeInitializeWaiter(with answer: JSONObject?, incarnation: Int, timedOut: Bool = false) {
        let waiter = state.withLock { state -> CheckedContinuation<JSONObject?, Never>? in
            guard state.incarnation == incarnation else { return nil }
            defer { state.initializeWaiter = nil }
            if timedOut, state.initializeWaiter != nil { state.startTimedOut = incarnation }
            return state.initializeWaiter
        }
        waiter?.resume(returning: answer)
    }

    /// `30 s`, `0.5 s`: how a person writes the timeout they would pass to the flag.
    static func seconds(_ duration: Duration) -> String {
        let (whole, atto) = duration.components
        let value = Double(whole) + Double(atto) / 1e18
        return String(format: "%g s", value)
    }

    private func readOutput(of child: ChildProcess, incarnation: Int) async {
        for await line in child.outputLines {
            guard !line.isEmpty else { continue }
            guard let value = try? JSONParser.parse(line) else {
                onEvent(.notJSON(prefix: String(decoding: line.prefix(120), as: UTF8.self)))
                continue
            }
            for message in value.arrayValue ?? [value] { handleOutput(message, from: child, incarnation: incarnation) }
        }
        // stdout closed: the program is ending. Its calls in flight get an error now.
        state.withLock { $0.outputEnded = max($0.outputEnded, incarnation) }
        _ = await child.waitForExit(timeout: .seconds(2))
        let reason =
            "the upstream command \(child.hasExited ? ChildProcess.describe(status: child.exitStatus ?? 0) : "closed its stdout") before answering"
        resumeInitializeWaiter(with: nil, incarnation: incarnation)
        let (deliveries, clients) = state.withLock { state -> ([StdioMultiplexer.Delivery], [StdioMultiplexer.ClientID: Client]) in
            guard state.incarnation == incarnation else { return ([], [:]) }
            state.initialized = nil
            state.problem = reason
            return (state.multiplexer.serverExited(reason), state.clients)
        }
        deliver(deliveries, to: clients, child: child)
        state.withLock { state in
            for id in Set(deliveries.compactMap { if case .client(let c, _) = $0 { c } else { nil } }) {
                state.clients.removeValue(forKey: id)?.continuation.finish()
            }
        }
    }

    private func handleOutput(_ message: JSONValue, from child: ChildProcess, incarnation: Int) {
        if message["id"]?.stringValue == "tg-initialize", message["method"] == nil {
            resumeInitializeWaiter(with: message["result"]?.objectValue, incarnation: incarnation)
            return
        }
        let (deliveries, clients) = state.withLock { state in (state.multiplexer.inbound(message), state.clients) }
        deliver(deliveries, to: clients, child: child)
    }

    private func deliver(
        _ deliveries: [StdioMultiplexer.Delivery], to clients: [StdioMultiplexer.ClientID: Client], child: ChildProcess
    ) {
        for delivery in deliveries {
            switch delivery {
            case .server(let message):
                try? child.write(line: JSONWriter.bytes(message))
            case .client(let id, let message):
                guard let client = clients[id] else { continue }
                client.continuation.yield(SSEEvent.message(message).encoded())
                let done = state.withLock { $0.multiplexer.pendingCount(client: id) == 0 }
                if done, message["method"] == nil {
                    client.continuation.finish()
                    _ = state.withLock { $0.clients.removeValue(forKey: id) }
                }
            }
        }
    }

    // MARK: Exchanges

    static let handshakeVersion = "2025-11-25"
    static let perRequestVersion = "2026-07-28"
    /// Handshake revisions a client may ask for, oldest first.
    static let handshakeVersions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]

    /// One POST of `caller`'s. `issuedSession` is the session its `initialize` is answered with. `onFinish` runs once
    /// when the exchange is over (its answer sent, or it failed).
    func post(
        _ request: UpstreamRequest, caller: StdioMultiplexer.Caller, issuedSession: String?,
        onFinish: @escaping @Sendable () -> Void
    ) async throws(UpstreamError) -> UpstreamResponse {
        guard let body = try? JSONParser.parse(request.body) else {
            onFinish()
            return Self.response(
                400, headers: [HTTPHeader("Content-Type", "application/json")],
                body: JSONWriter.bytes(JSONRPCResponse.error(id: nil, code: .parseError, message: "not JSON")))
        }
        let messages = body.arrayValue ?? [body]
        var local: [JSONValue] = []
        var toWrite: [JSONValue] = []
        var ended: [StdioMultiplexer.Delivery] = []
        var forwardsRequests = false
        enum Prepared {
            case notReady
            case refused(StdioMultiplexer.ResponseRefusal)
            case ready(client: StdioMultiplexer.ClientID, stream: AsyncStream<[UInt8]>?, child: ChildProcess, clients: [StdioMultiplexer.ClientID: Client])
        }
        let prepared: Prepared = state.withLock { state in
            guard let initialized = state.initialized, let child = state.child, !child.hasExited else { return .notReady }
            // Answers to the server's requests first: one that is not this caller's refuses the whole POST, before
            // anything of it reaches the server.
            for case .object(let message) in messages where message["method"] == nil {
                if let refusal = state.multiplexer.refusal(of: message, caller: caller) { return .refused(refusal) }
            }
            for case .object(let message) in messages where message["method"] == nil {
                if case .success(let mapped) = state.multiplexer.response(message, caller: caller) { toWrite.append(mapped) }
            }
            state.nextClient += 1
            let client = state.nextClient
            for case .object(let message) in messages {
                let method = message["method"]?.stringValue
                let id = message["id"]
                switch (method, id) {
                case ("initialize"?, let id?):
                    local.append(JSONRPCResponse.result(id: id, Self.initializeResult(initialized, asked: message)))
                case ("server/discover"?, let id?):
                    local.append(JSONRPCResponse.result(id: id, Self.discoverResult(initialized)))
                case (_?, _?):
                    toWrite.append(state.multiplexer.request(message, client: client, caller: caller))
                    forwardsRequests = true
                case (_?, nil):
                    let outcome = state.multiplexer.notification(message, client: client, caller: caller)
                    if let mapped = outcome.toServer { toWrite.append(mapped) }
                    ended += outcome.deliveries
                case (nil, _):
                    break  // an answer, taken above
                }
            }
            guard forwardsRequests else { return .ready(client: client, stream: nil, child: child, clients: state.clients) }
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
            state.clients[client] = Client(continuation: continuation)
            return .ready(client: client, stream: stream, child: child, clients: state.clients)
        }
        let client: StdioMultiplexer.ClientID
        let stream: AsyncStream<[UInt8]>?
        let child: ChildProcess
        switch prepared {
        case .notReady:
            onFinish()
            let why = problem ?? "the upstream command is not running"
            throw UpstreamError(code: .unreachable, message: "upstream command not ready: \(why)", requestSent: false)
        case .refused(let refusal):
            onFinish()
            onEvent(.refusedResponse(refusal))
            let why =
                switch refusal {
                case .otherClient: "this answers a request the server sent to another client; only that client may answer it"
                case .unknownRequest: "this answers no request of the server's that is waiting for an answer"
                }
            return Self.response(
                400, headers: [HTTPHeader("Content-Type", "application/json")],
                body: JSONWriter.bytes(JSONRPCResponse.error(id: nil, code: .invalidRequest, message: why)))
        case .ready(let c, let s, let ch, let clients):
            client = c
            stream = s
            child = ch
            // Exchanges a cancellation ended: the server will not answer their requests.
            deliver(ended, to: clients, child: ch)
        }
        var written = 0
        for message in toWrite {
            do {
                try child.write(line: JSONWriter.bytes(message))
                written += 1
            } catch {
                if written == 0 {
                    cancelClient(client, child: child, notify: false)
                    onFinish()
                    throw UpstreamError(
                        code: .unreachable, message: "the upstream command is gone (its stdin is closed)", requestSent: false)
                }
                break  // the rest is answered with errors when the program's exit is seen
            }
        }
        var headers: [HTTPHeader] = []
        if let issuedSession { headers.append(HTTPHeader("Mcp-Session-Id", issuedSession)) }
        guard let stream else {
            onFinish()
            if local.isEmpty { return Self.response(202, headers: headers, body: []) }
            headers.append(HTTPHeader("Content-Type", "application/json"))
            let answer = local.count == 1 && body.arrayValue == nil ? local[0] : .array(local)
            return Self.response(200, headers: headers, body: JSONWriter.bytes(answer))
        }
        headers.append(HTTPHeader("Content-Type", "text/event-stream"))
        let first = local.isEmpty ? [] : SSEEvent.message(.array(local)).encoded()
        let exchange = StdioExchangeBody(
            first: first, stream: stream,
            deadlines: .init(headers: configuration.headersTimeout, idle: configuration.idleTimeout),
            onCancel: { [weak self] in self?.cancelClient(client, child: child, notify: true) }, onFinish: onFinish)
        request.agent?.onDeparture { exchange.cancel() }
        return UpstreamResponse(status: 200, headers: headers, body: exchange)
    }

    private func cancelClient(_ client: StdioMultiplexer.ClientID, child: ChildProcess, notify: Bool) {
        let cancellations = state.withLock { state -> [JSONValue] in
            state.clients.removeValue(forKey: client)?.continuation.finish()
            return state.multiplexer.clientGone(client)
        }
        guard notify else { return }
        for message in cancellations { try? child.write(line: JSONWriter.bytes(message)) }
    }

    static func response(_ status: Int, headers: [HTTPHeader], body: [UInt8]) -> UpstreamResponse {
        UpstreamResponse(status: status, headers: headers, body: StdioExchangeBody(first: body))
    }

    /// The program's own answer, in the revision the client asked for when toolgate can speak it with the program.
    static func initializeResult(_ initialized: JSONObject, asked: JSONObject) -> JSONValue {
        var result = initialized
        let serverVersion = initialized["protocolVersion"]?.stringValue ?? handshakeVersion
        if let wanted = asked["params"]?["protocolVersion"]?.stringValue, handshakeVersions.contains(wanted),
            wanted <= serverVersion
        {
            result["protocolVersion"] = .string(wanted)
        }
        return .object(result)
    }

    /// `server/discover` (2026-07-28), from the program's `initialize` answer.
    static func discoverResult(_ initialized: JSONObject) -> JSONValue {
        var result: JSONObject = [
            "supportedVersions": [.string(perRequestVersion)],
            "capabilities": initialized["capabilities"] ?? [:],
        ]
        if let instructions = initialized["instructions"] { result["instructions"] = instructions }
        return .object(StdioMultiplexer.perRequestResult(result, method: "server/discover", serverInfo: initialized["serverInfo"]))
    }
}

public struct StdioUpstreamFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The last lines the program wrote on stderr, for the error when it never starts.
private final class StderrTail: Sendable {
    private let buffer = Mutex<(lines: [String], finished: Bool)>(([], false))
    func append(_ line: String) {
        buffer.withLock {
            $0.lines.append(String(line.prefix(300)))
            if $0.lines.count > 10 { $0.lines.removeFirst() }
        }
    }
    /// The program's stderr has ended.
    func finish() { buffer.withLock { $0.finished = true } }
    var isFinished: Bool { buffer.withLock { $0.finished } }
    var lines: [String] { buffer.withLock { $0.lines } }
}

/// One exchange's answer: what the transport has for it already, then the events the program's messages make. A
/// program that says nothing for it within the headers timeout (before its first event) or the idle timeout (between
/// events) ends it with that error, as an HTTP upstream's silence would: no exchange waits for ever.
final class StdioExchangeBody: UpstreamBody {
    struct Deadlines: Sendable {
        let headers: Duration
        let idle: Duration
    }

    private struct State {
        var pendingFirst: [UInt8]?
        var cancelled = false
        var finished = false
        var timedOut: UpstreamError?
        var lastEvent: ContinuousClock.Instant?
        var watchdog: Task<Void, Never>?
    }

    private let state: Mutex<State>
    private let stream: AsyncStream<[UInt8]>?
    private let deadlines: Deadlines?
    private let onCancel: @Sendable () -> Void
    private let onFinish: @Sendable () -> Void

    /// A body that is all there already.
    convenience init(first: [UInt8]) {
        self.init(first: first, stream: nil, deadlines: nil, onCancel: {}, onFinish: {})
    }

    init(
        first: [UInt8], stream: AsyncStream<[UInt8]>?, deadlines: Deadlines?, onCancel: @escaping @Sendable () -> Void,
        onFinish: @escaping @Sendable () -> Void
    ) {
        state = Mutex(State(pendingFirst: first.isEmpty ? nil : first))
        self.stream = stream
        self.deadlines = deadlines
        self.onCancel = onCancel
        self.onFinish = onFinish
        if stream != nil, let deadlines {
            let watchdog = Task { [weak self] () -> Void in
                guard let self else { return }
                await self.watch(deadlines)
            }
            state.withLock { $0.watchdog = watchdog }
        }
    }

    /// Ends the exchange when the program stays silent too long.
    private func watch(_ deadlines: Deadlines) async {
        let began = ContinuousClock.now
        while !Task.isCancelled {
            let (done, last) = state.withLock { ($0.finished || $0.cancelled, $0.lastEvent) }
            if done { return }
            let limit = last == nil ? deadlines.headers : deadlines.idle
            let since = last ?? began
            let left = limit - (ContinuousClock.now - since)
            if left <= .zero {
                let what = last == nil ? "before its first answer" : "between answers"
                let error = UpstreamError(
                    code: last == nil ? .headersTimeout : .idleTimeout,
                    message: "the upstream command sent nothing for this request for \(limit) (\(what))")
                state.withLock { if $0.timedOut == nil { $0.timedOut = error } }
                cancel()
                return
            }
            try? await Task.sleep(for: left)
        }
    }

    func next() async throws(UpstreamError) -> [UInt8]? {
        if let first = state.withLock({ value -> [UInt8]? in defer { value.pendingFirst = nil }; return value.pendingFirst }) {
            return first
        }
        if let error = state.withLock({ $0.timedOut }) { throw error }
        guard !state.withLock({ $0.cancelled }), let stream else {
            finish()
            return nil
        }
        // One reader (the relay) at a time; an AsyncStream's iterators share its buffer.
        var iterator = stream.makeAsyncIterator()
        let chunk = await iterator.next()
        if let error = state.withLock({ $0.timedOut }) {
            finish()
            throw error
        }
        if chunk == nil { finish() } else { state.withLock { $0.lastEvent = .now } }
        return chunk
    }

    func cancel() {
        let first = state.withLock { value -> Bool in
            defer { value.cancelled = true }
            return !value.cancelled
        }
        if first { onCancel() }
        finish()
    }

    /// The exchange is over: its watchdog stops, and whoever counts exchanges hears it once.
    private func finish() {
        let (first, watchdog) = state.withLock { value -> (Bool, Task<Void, Never>?) in
            defer {
                value.finished = true
                value.watchdog = nil
            }
            return (!value.finished, value.watchdog)
        }
        guard first else { return }
        watchdog?.cancel()
        onFinish()
    }
}
