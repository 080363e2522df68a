#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import ToolgateCore

/// `toolgate stdio`: one MCP client speaks newline-delimited JSON-RPC on this process's stdin and stdout (the MCP
/// stdio transport), and every message goes through exactly the pipeline `/mcp` uses — policy, limits, denials,
/// metrics, audit — as one POST, with the headers an HTTP client of the message's era would send. Answers, and
/// whatever the upstream streams for a message (progress, its own requests), go to stdout one message per line.
/// Nothing else is ever written to stdout. It ends when stdin closes, after the messages in flight are answered.
///
/// Messages keep the order they were written in where the protocol needs it (`StdioMessageOrder`): nothing
/// overtakes `initialize`, and a notification reaches the upstream after the requests written before it (and before
/// the ones written after it); requests themselves run side by side.
public struct StdioFront: Service {
    /// The one server's proxy, or with several servers the merged endpoint in front of theirs.
    let handle: @Sendable (Request) async -> Response
    let logger: Logger
    let maxLineBytes: Int
    let input: Int32
    let output: StdioLineWriter
    let readiness: ToolgateServer.Readiness

    /// `servers`: one (its proxy answers), or several of a servers file (the merged endpoint answers, DESIGN.md
    /// section 10); `configuration` is the front's own (its name separator).
    public init(
        configuration: ServerConfiguration, servers: [UpstreamServer], policy: PolicyState, store: any LimitStore,
        metrics: ToolgateMetrics, readiness: ToolgateServer.Readiness, logger: Logger, approvals: any ApprovalStore,
        roundStates: any RoundStateStore, auditLog: AuditLog?, inflight: InflightRequests, input: Int32 = STDIN_FILENO,
        output: Int32 = STDOUT_FILENO
    ) {
        let gate = ApprovalGate(store: approvals, metrics: metrics, logger: logger)
        let proxies = servers.map { server in
            MCPProxy(
                configuration: server.configuration, policy: policy, store: store,
                // Reports when each message reached the upstream: what must not overtake it waits until then.
                upstream: StdioOrderedUpstream(upstream: server.upstream), metrics: metrics, logger: logger,
                approvals: gate, upstreamObservation: server.observation, roundStates: roundStates, auditLog: auditLog,
                readiness: readiness, inflight: inflight)
        }
        if proxies.count == 1 {
            let proxy = proxies[0]
            handle = { await proxy.handle($0) }
        } else {
            let exchanges = zip(servers, proxies).map { ServerExchange(server: $0.name ?? "", proxy: $1) }
            let merged = MergedEndpoint(separator: configuration.nameSeparator, version: metrics.version, logger: logger)
            let names = MergedNames(servers: exchanges.map(\.server), separator: configuration.nameSeparator)
            handle = { await merged.handle($0, agent: nil, servers: exchanges, names: names) }
        }
        self.logger = logger
        maxLineBytes = configuration.maxBodyBytes
        self.input = input
        self.readiness = readiness
        self.output = StdioLineWriter(descriptor: output)
    }

    public func run() async throws {
        // A client that closes our stdout must not end the process with SIGPIPE: writes then fail, quietly.
        signal(SIGPIPE, SIG_IGN)
        let session = StdioSession()
        let lines = StdioLineReader.lines(from: input, maximumLineBytes: maxLineBytes)
        logger.info("stdio: reading MCP messages on stdin")
        await withTaskGroup(of: Void.self) { group in
            // Requests written so far whose upstream may not have them yet: a notification must not overtake them.
            var unsent: [(id: JSONValue?, progress: StdioMessageProgress)] = []
            // A drain stops the reading (a client may never close stdin); what is in flight still finishes.
            for await line in lines.cancelOnGracefulShutdown() {
                switch line {
                case .tooLong(let count):
                    output.write(
                        JSONWriter.bytes(
                            JSONRPCResponse.error(
                                id: nil, code: .invalidRequest,
                                message: "message of \(count)+ bytes is larger than \(maxLineBytes) bytes (--max-body-bytes)")))
                case .line(let bytes):
                    guard !bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) else { continue }
                    let message = try? JSONParser.parse(bytes)
                    unsent.removeAll { $0.progress.received.isOpen }
                    // Each message goes on its own task once what it must not overtake reached the upstream: a slow
                    // call never holds up the next request (a ping, a cancellation, the answer to the upstream's own
                    // request), and the reading waits only where the protocol needs the order.
                    let progress = StdioMessageProgress()
                    switch StdioMessageOrder(message) {
                    case .initialize:
                        for earlier in unsent { await earlier.progress.received.wait() }
                        unsent = []
                        await relay(bytes, message: message, session: session, progress: progress)
                    case .concurrent(let id):
                        group.addTask { await self.relay(bytes, message: message, session: session, progress: progress) }
                        if id != nil { unsent.append((id, progress)) }
                    case .cancellation(let requestID):
                        if let cancelled = unsent.last(where: { $0.id == requestID }) {
                            await cancelled.progress.handedOver.wait()
                        }
                        group.addTask { await self.relay(bytes, message: message, session: session, progress: progress) }
                        await progress.received.wait()
                    case .barrier:
                        for earlier in unsent { await earlier.progress.received.wait() }
                        unsent = []
                        group.addTask { await self.relay(bytes, message: message, session: session, progress: progress) }
                        await progress.received.wait()
                    case .unordered:
                        group.addTask { await self.relay(bytes, message: message, session: session, progress: progress) }
                    }
                }
            }
            logger.info("stdio: stdin closed; finishing the messages in flight")
        }
        if let id = session.id {
            await discard(await handle(Self.request(method: .delete, body: [], headers: session.headers(for: nil))))
            logger.debug("stdio: ended the upstream session", metadata: ["session": "\(id)"])
        }
        if readiness.isDraining {
            // A drain (SIGTERM) was under way when stdin closed: the group ends its services in turn, and one that ends
            // before its turn fails the group (exit 1), so the front waits for its turn, which comes at once.
            try? await gracefulShutdown()
        }
    }

    private func relay(_ bytes: [UInt8], message: JSONValue?, session: StdioSession, progress: StdioMessageProgress) async {
        let response = await StdioMessageProgress.$current.withValue(progress) {
            await handle(Self.request(method: .post, body: bytes, headers: session.headers(for: message)))
        }
        // Answered by toolgate itself, or the upstream failed: nothing of it is on its way any more.
        progress.finished()
        if message?["method"] != nil, message?["id"] == nil, response.status.code >= 400 {
            // A notification has no answer to carry an error: the log gets it.
            logger.warning("stdio: a notification was not delivered", metadata: ["status": "\(response.status.code)"])
            await discard(response)
            return
        }
        guard message?["method"]?.stringValue == "initialize" else {
            await relay(response, to: StdioMessageSink(output: output, hold: false))
            return
        }
        // The answer to initialize is held until the session it opens is adopted: the client's next message must
        // already carry it.
        let sink = StdioMessageSink(output: output, hold: true)
        await relay(response, to: sink)
        let version = sink.held.lazy.compactMap { $0["result"]?["protocolVersion"]?.stringValue }.first
        if session.adopt(response.headers[MCPProxy.sessionID], protocolVersion: version) { startServerStream(session: session) }
        sink.release()
    }

    /// The upstream's own stream (GET), for what it sends outside any request: list changes, log messages.
    private func startServerStream(session: StdioSession) {
        let headers = session.headers(for: nil)
        Task {
            let response = await handle(Self.request(method: .get, body: [], headers: headers))
            guard response.status == .ok else {
                // No stream (a stdio upstream has none): its body is still read, or it would count as open for ever.
                await discard(response)
                return
            }
            await relay(response, to: StdioMessageSink(output: output, hold: false))
        }
    }

    /// Reads a response that has nothing for the client to its end: a body left unread would stay counted as in
    /// flight (a drain would wait for it until its timeout).
    private func discard(_ response: Response) async {
        try? await response.body.write(StdioDiscardingBodyWriter())
    }

    /// Every JSON-RPC message of a response goes out one per line: a JSON body whole, an event stream event by event.
    private func relay(_ response: Response, to sink: StdioMessageSink) async {
        let eventStream = response.headers[.contentType]?.lowercased().hasPrefix("text/event-stream") ?? false
        do {
            try await response.body.write(StdioBodyWriter(sink: sink, eventStream: eventStream))
        } catch {
            logger.warning("stdio: an answer broke off", metadata: ["error": "\(error)"])
        }
        if sink.finishJSON() == false {
            logger.warning("stdio: an answer that is not JSON was not written to stdout", metadata: ["status": "\(response.status.code)"])
        }
    }

    static func request(method: HTTPRequest.Method, body: [UInt8], headers: HTTPFields) -> Request {
        let head = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: "/mcp", headerFields: headers)
        return Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: body)))
    }
}
