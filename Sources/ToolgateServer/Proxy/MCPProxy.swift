import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// The `/mcp` endpoint: authenticate, enforce `tools/call`, filter `tools/list`, forward everything else
/// unchanged (DESIGN.md sections 3–5).
struct MCPProxy: Sendable {
    let configuration: ServerConfiguration
    let policy: PolicyState
    let store: any LimitStore
    let upstream: any UpstreamTransport
    let metrics: ToolgateMetrics
    let logger: Logger
    let originGuard: RequestOriginGuard
    /// One identity per grant, so subject hashes are computed once; requests only add their session.
    let identities: IdentityCache
    /// A store outage refuses every call; its log line is written once a second.
    let storeFailureLog = LogThrottle()
    /// A misconfigured agent fails every request; its log line is written once a second.
    let authFailureLog = LogThrottle()
    /// Sessions the upstream issued, per grant: the only ids `session` scope counts.
    let sessions: SessionTable
    /// Where calls to `action: approve` tools wait for a human.
    let approvals: ApprovalGate
    /// The last upstream answer's status, for `/readyz`.
    let upstreamObservation: UpstreamObservation
    /// An upstream that is not an MCP endpoint fails every request; its log line is written once a second.
    let notJSONRPCLog = LogThrottle()
    /// The policy held against the tools the upstream lists, once per policy.
    let coverage: PolicyCoverageReport
    /// `requestState`s relayed to agents, so a multi-round call is charged once (DESIGN.md section 7).
    let roundStates: any RoundStateStore
    /// `--audit-log`: one line per `tools/call` decision.
    let auditLog: AuditLog?
    /// Draining refuses new requests; what is in flight is what a drain waits for.
    let readiness: ToolgateServer.Readiness
    let inflight: InflightRequests

    init(
        configuration: ServerConfiguration, policy: PolicyState, store: any LimitStore, upstream: any UpstreamTransport,
        metrics: ToolgateMetrics, logger: Logger, sessions: SessionTable = SessionTable(), approvals: ApprovalGate? = nil,
        upstreamObservation: UpstreamObservation = UpstreamObservation(),
        roundStates: any RoundStateStore = InMemoryRoundStateStore(clock: SystemWallClock()), auditLog: AuditLog? = nil,
        readiness: ToolgateServer.Readiness = .init(), inflight: InflightRequests? = nil
    ) {
        self.readiness = readiness
        self.inflight = inflight ?? InflightRequests(metrics: metrics)
        self.roundStates = roundStates
        self.auditLog = auditLog
        self.sessions = sessions
        self.upstreamObservation = upstreamObservation
        coverage = PolicyCoverageReport(logger: logger)
        self.approvals =
            approvals ?? ApprovalGate(store: InMemoryApprovalStore(clock: SystemWallClock()), metrics: metrics, logger: logger)
        self.configuration = configuration
        self.policy = policy
        self.store = store
        self.upstream = upstream
        self.metrics = metrics
        self.logger = logger
        originGuard = RequestOriginGuard(
            boundToLoopback: RequestOriginGuard.isLoopback(listenHost: configuration.listenHost),
            allowedHosts: configuration.allowedHosts, allowedOrigins: configuration.allowedOrigins)
        identities = IdentityCache(agent: configuration.agentID)
    }

    /// `agent`: the connection the request came on; work for it stops when it leaves. `mergedSession`: the merged
    /// endpoint's session the request belongs to, which `session` scope then counts (one agent session, however
    /// many servers it reaches).
    func handle(_ request: Request, agent: (any AgentPresence)? = nil, mergedSession: String? = nil) async -> Response {
        let started = ContinuousClock.now
        inflight.enter()
        defer { inflight.leave() }
        // One policy for the whole request, whatever a reload does meanwhile.
        let snapshot = policy.snapshot(forServer: configuration.serverName)
        if let rejection = originGuard.rejection(host: request.head.authority, origin: request.headers[.origin]) {
            logger.warning("refused request", metadata: ["reason": "\(rejection)"])
            switch rejection {
            case .badAuthority(let why): return Self.httpError(.badRequest, .invalidRequest, why)
            case .forbidden(let why): return Self.httpError(.forbidden, .invalidRequest, why)
            }
        }
        if request.headers[values: Self.sessionID].count > 1 {
            // toolgate and the upstream must never disagree about which session a call belongs to.
            return Self.httpError(.badRequest, .invalidRequest, "Mcp-Session-Id must appear at most once")
        }
        guard let identity = authenticate(request, grants: snapshot.grants, mergedSession: mergedSession) else {
            metrics.authFailure()
            if let suppressed = authFailureLog.admit() {
                // Never the token: only whether one came, and from where.
                logger.warning(
                    "refused a request without a known bearer token",
                    metadata: [
                        "authorization": "\(request.headers[.authorization] == nil ? "missing" : "unknown token")",
                        "suppressedSinceLastLine": "\(suppressed)",
                    ])
            }
            var response = Self.httpError(
                .unauthorized, .invalidRequest, "missing or unknown bearer token: send Authorization: Bearer <token>")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        switch request.method {
        case .post: return await post(request, identity: identity, agent: agent, snapshot: snapshot, started: started)
        case .get:
            return await forward(
                request, method: .get, body: [], identity: identity, context: ForwardContext(agent: agent, snapshot: snapshot))
        case .delete:
            return await forward(
                request, method: .delete, body: [], identity: identity, context: ForwardContext(agent: agent, snapshot: snapshot))
        default:
            return Self.httpError(.methodNotAllowed, .invalidRequest, "use POST, GET or DELETE on /mcp")
        }
    }

    /// The grant a request authenticates as, for the merged endpoint's sessions; nil when it does not.
    func grant(of request: Request) -> String? {
        authenticate(request, grants: policy.snapshot(forServer: configuration.serverName).grants, mergedSession: nil)?.grant
    }

    private func authenticate(_ request: Request, grants: GrantTable?, mergedSession: String?) -> Identity? {
        let grant: String
        if let fixedGrant = configuration.fixedGrant {
            grant = fixedGrant
        } else if let grants {
            guard let authorization = request.headers[.authorization] else { return nil }
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased().isExactly("bearer") else { return nil }
            guard let name = grants.grant(forToken: String(parts[1]).trimmingWhitespace) else { return nil }
            grant = name
        } else {
            grant = ServerConfiguration.defaultGrant
        }
        let identity = identities.identity(grant: grant)
        if let mergedSession { return identity.with(session: mergedSession) }
        // Only a session the upstream issued to this grant counts as one; anything else falls back to the grant.
        guard let session = request.headers[Self.sessionID], sessions.isSession(grant: grant, session: session) else {
            return identity
        }
        return identity.with(session: session)
    }

    private func post(
        _ request: Request, identity: Identity, agent: (any AgentPresence)?, snapshot: PolicyState.Snapshot,
        started: ContinuousClock.Instant
    ) async -> Response {
        guard RequestMediaType.isJSON(request.headers[.contentType]) else {
            return Self.httpError(
                .unsupportedMediaType, .invalidRequest,
                "Content-Type must be application/json, got \(request.headers[.contentType].map { "\"\($0.prefix(100))\"" } ?? "none")")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return Self.httpError(
                .contentTooLarge, .invalidRequest, "request body is larger than \(configuration.maxBodyBytes) bytes (--max-body-bytes)")
        } catch {
            return Self.httpError(.badRequest, .invalidRequest, "could not read the request body: \(error)")
        }
        let bytes = Array(buffer.readableBytesView)
        let body: JSONRPCBody
        do {
            body = try JSONRPCBody.parse(bytes)
        } catch {
            return Self.httpError(.badRequest, error.code, error.message)
        }
        if readiness.isDraining, DrainAdmission.refuses(body, hasSession: request.headers[Self.sessionID] != nil) {
            return Self.drainingRefusal()
        }
        let exchange = Exchange(
            identity: identity, era: ProtocolEra(protocolVersionHeader: request.headers[Self.protocolVersion]),
            format: ResponseFormat(accept: request.headers[.accept]), agent: agent, snapshot: snapshot, started: started)
        switch body {
        case .single(let message):
            if let mismatch = MCPHeaderCheck.mismatch(
                methodHeader: request.headers[Self.mcpMethod], nameHeader: request.headers[Self.mcpName], message: message,
                era: exchange.era)
            {
                return Self.httpError(.badRequest, mismatch.code, mismatch.message)
            }
            var context = ForwardContext(agent: agent, snapshot: snapshot)
            if let id = message.id, case .request = message.kind { context.plan.requestIDs = [id] }
            switch (message.kind, message.known) {
            case (.notification, .toolsCall):
                // Never forwarded: a call without an id would run unchecked, and its answer could not be tracked.
                return Self.httpError(.badRequest, .invalidRequest, Self.toolCallNotification)
            case (.request, .toolsCall):
                switch await enforce(message, exchange) {
                case .answer(let answer, let retryAfter, let quota, let audit):
                    if let audit { auditLog?.record(audit.line(upstreamStatus: nil)) }
                    return Self.answer(answer, format: exchange.format, retryAfter: retryAfter, quota: quota)
                case .forward(let receipt, let quota, let call, let audit):
                    context.receipts = receipt.map { [$0] } ?? []
                    context.quota = quota
                    if let audit { context.audits = [audit] }
                    if let id = message.id {
                        context.plan.toolCalls = [.init(id: id, tool: call.name, arguments: call.arguments)]
                    }
                }
            case (.request, .toolsList):
                context.plan.listsTools = true
                if let cursor = message.raw["params"]?["cursor"], cursor != .null { context.listsALaterPage = true }
            case (.request, .initialize):
                context.initializes = true
            case (.request, .resourcesRead), (.request, .promptsGet), (.request, nil):
                var body = bytes
                var header = request.headers[Self.mcpName]
                switch resourceOrPromptGate(message, exchange) {
                case .forward: break
                case .answer(let answer): return Self.answer(answer, format: exchange.format, retryAfter: nil)
                case .probe(let standIn, let probe):
                    context.plan.probes = [probe]
                    body = JSONWriter.bytes(standIn)
                    if let replaced = probe.nameHeader(replacing: header) { header = replaced }
                }
                // A header naming something hidden that the body does not (checked unless the probe set it; every
                // value, if the agent sent several).
                if !configuration.shadow, header == request.headers[Self.mcpName],
                    let replaced = request.headers[values: Self.mcpName].lazy.compactMap({
                        ResourceAndPromptGate.nameHeaderStandIn(
                            message, header: $0, policy: snapshot.policy, token: Self.absentNameToken)
                    }).first
                {
                    header = replaced
                }
                if header != request.headers[Self.mcpName] || body != bytes {
                    var head = request.head
                    head.headerFields[Self.mcpName] = header
                    return await forward(
                        Request(head: head, body: request.body), method: .post, body: body, identity: identity, context: context)
                }
            case (.request, let known?) where known.isFilteredList:
                context.plan.listsTools = true
            default:
                break
            }
            return await forward(request, method: .post, body: bytes, identity: identity, context: context)
        case .batch(let messages):
            return await batch(request, messages: messages, original: bytes, identity: identity, exchange, agent: agent)
        }
    }

    /// Each element is enforced on its own; toolgate answers the refused ones, forwards the rest, and
    /// merges the answers into one array.
    private func batch(
        _ request: Request, messages: [JSONRPCMessage], original: [UInt8], identity: Identity, _ exchange: Exchange,
        agent: (any AgentPresence)?
    ) async -> Response {
        var answers: [JSONValue] = []
        var forwarded: [JSONValue] = []
        var context = ForwardContext(agent: agent, snapshot: exchange.snapshot)
        var retryAfter: Int?
        /// An element was replaced (an absent-name probe): the body is written anew.
        var rewritten = false
        for message in messages {
            if case .notification = message.kind, message.known == .toolsCall {
                answers.append(JSONRPCResponse.error(id: nil, code: .invalidRequest, message: Self.toolCallNotification))
                continue
            }
            if case .request = message.kind, let id = message.id {
                switch message.known {
                case .toolsCall?:
                    switch await enforce(message, exchange) {
                    case .answer(let answer, let retry, _, let audit):
                        if let audit { auditLog?.record(audit.line(upstreamStatus: nil)) }
                        answers.append(answer)
                        if let retry { retryAfter = max(retryAfter ?? 0, retry) }
                        continue
                    case .forward(let receipt, _, let call, let audit):
                        if let receipt { context.receipts.append(receipt) }
                        if let audit { context.audits.append(audit) }
                        context.plan.toolCalls.append(.init(id: id, tool: call.name, arguments: call.arguments))
                    }
                case .initialize?: context.initializes = true
                case .resourcesRead?, .promptsGet?, nil:
                    switch resourceOrPromptGate(message, exchange) {
                    case .forward: break
                    case .answer(let answer):
                        answers.append(answer)
                        continue
                    case .probe(let standIn, let probe):
                        context.plan.probes.append(probe)
                        context.plan.requestIDs.append(id)
                        forwarded.append(standIn)
                        rewritten = true
                        continue
                    }
                case .toolsList?, .resourcesList?, .resourceTemplatesList?, .promptsList?: context.plan.listsTools = true
                }
                context.plan.requestIDs.append(id)
            }
            forwarded.append(message.raw)
        }
        if forwarded.isEmpty { return Self.answer(.array(answers), format: exchange.format, retryAfter: retryAfter) }
        context.plan.localAnswers = answers
        context.retryAfter = retryAfter
        let body = answers.isEmpty && !rewritten ? original : JSONWriter.bytes(.array(forwarded))
        return await forward(request, method: .post, body: body, identity: identity, context: context)
    }

    /// What becomes of a request that may name a resource or prompt (DESIGN.md section 4).
    enum ResourceOrPromptHandling {
        case forward
        /// Malformed where the policy must look.
        case answer(JSONValue)
        /// It names what the policy keeps out: this request, about a name that cannot exist, goes instead.
        case probe(JSONValue, AbsentNameProbe)
    }

    /// Judges a request naming a resource or prompt, counts and audits the decision. Under `--shadow` nothing is
    /// refused, only logged.
    private func resourceOrPromptGate(_ message: JSONRPCMessage, _ exchange: Exchange) -> ResourceOrPromptHandling {
        let policy = exchange.snapshot.policy
        let judgement = ResourceAndPromptGate.judge(message, policy: policy)
        switch judgement {
        case .pass:
            return .forward
        case .answer(let answer):
            guard configuration.shadow else { return .answer(answer) }
            logger.info("shadow: malformed request would be refused; forwarded", metadata: ["method": "\(message.method ?? "")"])
            return .forward
        case .judged(let method, let names):
            for named in names {
                let decision: ToolgateMetrics.AccessDecision =
                    named.allowed ? .allowed : configuration.shadow ? .shadowDenied : .denied
                metrics.accessDecision(kind: named.kind, decision: decision, server: configuration.serverName)
                auditLog?.record(
                    AccessAudit(
                        timeMicros: SystemWallClock().nowMicros(), grant: exchange.identity.grant, session: exchange.identity.session,
                        agent: exchange.identity.agent, server: configuration.serverName, method: method, kind: named.kind, name: named.name, decision: decision,
                        policySHA256: policy.sha256
                    ).line)
            }
            let keptOut = judgement.keptOut
            guard !keptOut.isEmpty else { return .forward }
            guard !configuration.shadow else {
                logger.info("shadow: request would be refused; forwarded", metadata: ["method": "\(method)"])
                return .forward
            }
            // Never the name in the log: it is the agent's, and hidden.
            logger.info("request names what the policy keeps out; asking upstream about an absent name instead",
                        metadata: ["method": "\(method)"])
            let (standIn, probe) = AbsentNameProbe.probe(message, method: method, keptOut: keptOut, tokens: Self.absentNameToken)
            return .probe(standIn, probe)
        }
    }

    /// 32 random letters and digits, starting with a letter: a name no upstream has, of a shape every name syntax takes.
    static func absentNameToken() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".unicodeScalars)
        var generator = SystemRandomNumberGenerator()
        var token = String.UnicodeScalarView()
        token.append(alphabet[Int.random(in: 0..<26, using: &generator)])
        for _ in 1..<32 { token.append(alphabet[Int.random(in: 0..<alphabet.count, using: &generator)]) }
        return String(token)
    }

    static let toolCallNotification = "tools/call must be a request with an \"id\"; toolgate never forwards it as a notification"

    static let sessionID = HTTPField.Name("Mcp-Session-Id")!
    static let protocolVersion = HTTPField.Name("MCP-Protocol-Version")!
    static let mcpMethod = HTTPField.Name("Mcp-Method")!
    static let mcpName = HTTPField.Name("Mcp-Name")!
}

/// Per-request facts the pipeline stages share.
struct Exchange: Sendable {
    let identity: Identity
    let era: ProtocolEra
    let format: ResponseFormat
    /// The agent's connection: a wait for approval ends when it leaves.
    var agent: (any AgentPresence)? = nil
    /// The policy this request is judged by, from its start to its end.
    let snapshot: PolicyState.Snapshot
    /// When the request arrived: audit lines' latency counts from here.
    var started: ContinuousClock.Instant = .now
}

/// What forwarding must do besides passing bytes.
struct ForwardContext: Sendable {
    init(agent: (any AgentPresence)?, snapshot: PolicyState.Snapshot) {
        self.agent = agent
        self.snapshot = snapshot
    }

    /// The policy the request is judged by: its tool-list filter applies to the answer.
    let snapshot: PolicyState.Snapshot
    /// Audit lines of the forwarded calls, completed with the upstream's status.
    var audits: [CallAudit] = []
    /// What the answer must be checked against: forwarded request ids, tool lists, toolgate's own answers.
    var plan = ResponseRelay.Plan()
    /// What the forwarded calls consumed, given back only if the upstream demonstrably did not run them.
    var receipts: [LimitReceipt] = []
    /// The body holds `initialize`: a session id in the answer is one the upstream issued to this grant.
    var initializes = false
    var retryAfter: Int?
    /// The agent's connection: when it leaves, the upstream exchange is stopped.
    var agent: (any AgentPresence)?
    /// A `tools/list` for a page after the first: its tools are not the whole list.
    var listsALaterPage = false
    /// The forwarded call's tightest limit, for the answer's `RateLimit` headers.
    var quota: RateLimitHeaders?
}

extension RateLimitHeaders {
    static let policyField = HTTPField.Name("RateLimit-Policy")!
    static let stateField = HTTPField.Name("RateLimit")!

    func apply(to fields: inout HTTPFields) {
        fields[Self.policyField] = policy
        fields[Self.stateField] = state
    }
}

extension MCPProxy {
    /// What starts new work on a draining sidecar is sent elsewhere; the connection closes with the answer.
    static func drainingRefusal() -> Response {
        var response = httpError(.serviceUnavailable, .internalError, "toolgate is shutting down; send new sessions to another instance")
        response.headers[.connection] = "close"
        response.headers[.retryAfter] = "1"
        return response
    }

    /// An HTTP-level refusal: the status, and a JSON-RPC error body with `"id": null`.
    static func httpError(_ status: HTTPResponse.Status, _ code: JSONRPCErrorCode, _ message: String) -> Response {
        jsonResponse(status: status, JSONRPCResponse.error(id: nil, code: code, message: message))
    }

    static func jsonResponse(status: HTTPResponse.Status, _ value: JSONValue, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }

    /// An answer toolgate makes itself, in the format the client accepts.
    static func answer(_ value: JSONValue, format: ResponseFormat, retryAfter: Int?, quota: RateLimitHeaders? = nil) -> Response {
        var extra: HTTPFields = [:]
        if let retryAfter { extra[.retryAfter] = String(retryAfter) }
        quota?.apply(to: &extra)
        switch format {
        case .json:
            return jsonResponse(status: .ok, value, extra: extra)
        case .eventStream:
            var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
            headers.append(contentsOf: extra)
            let bytes = SSEEvent.message(value).encoded()
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
