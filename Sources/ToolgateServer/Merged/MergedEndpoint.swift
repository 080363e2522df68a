import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import ToolgateCore

/// `/mcp` with several servers (DESIGN.md section 10): one MCP server holding every server's tools, prompts and
/// resources. Each request reaches its server through that server's own proxy, so enforcement, approvals, refunds,
/// audit and metrics are exactly those of `/mcp/NAME`; this layer only opens sessions, merges lists and routes.
final class MergedEndpoint: Sendable {
    let separator: String
    let logger: Logger
    let sessions = MergedSessionTable()
    /// Which server each resource URI or template belongs to, from every list any agent was shown.
    private let owners: Mutex<(servers: [String], owners: ResourceOwners)>
    private let serverInfo: JSONValue
    /// When every server's resource lists were last asked for on behalf of an unknown URI.
    private let lastLearned = Mutex<ContinuousClock.Instant?>(nil)

    init(separator: String, version: String, logger: Logger) {
        self.separator = separator
        self.logger = logger
        owners = Mutex(([], ResourceOwners(servers: [])))
        serverInfo = ["name": "toolgate", "version": .string(version)]
    }

    /// `names`: made from `servers` with this endpoint's separator (once per servers file, not per request).
    func handle(_ request: Request, agent: (any AgentPresence)?, servers: [ServerExchange], names: MergedNames) async -> Response {
        guard let first = servers.first else {
            return MCPProxy.httpError(.serviceUnavailable, .internalError, "no MCP server is configured")
        }
        if request.headers[values: MCPProxy.sessionID].count > 1 {
            return MCPProxy.httpError(.badRequest, .invalidRequest, "Mcp-Session-Id must appear at most once")
        }
        // Refused exactly as a server route refuses it (and counted there).
        guard let grant = first.proxy.grant(of: request) else { return await first.proxy.handle(request) }
        var session: MergedSession?
        if let id = request.headers[MCPProxy.sessionID] {
            guard let known = sessions.session(id, grant: grant) else {
                return MCPProxy.httpError(.notFound, .invalidRequest, "unknown or ended session: send initialize again")
            }
            session = known
        }
        let call = MergedCall(
            endpoint: self, servers: servers, names: names, session: session, grant: grant, head: request.head, agent: agent,
            format: ResponseFormat(accept: request.headers[.accept]))
        switch request.method {
        case .post: return await post(request, call)
        case .get: return await call.listen()
        case .delete:
            guard let session else {
                return MCPProxy.httpError(.badRequest, .invalidRequest, "DELETE needs the Mcp-Session-Id of a session to end")
            }
            await call.endSession(session)
            return Response(status: .ok)
        default:
            return MCPProxy.httpError(.methodNotAllowed, .invalidRequest, "use POST, GET or DELETE on /mcp")
        }
    }

    private func post(_ request: Request, _ call: MergedCall) async -> Response {
        let proxy = call.servers[0].proxy
        guard RequestMediaType.isJSON(request.headers[.contentType]) else {
            return MCPProxy.httpError(
                .unsupportedMediaType, .invalidRequest,
                "Content-Type must be application/json, got \(request.headers[.contentType].map { "\"\($0.prefix(100))\"" } ?? "none")")
        }
        let limit = proxy.configuration.maxBodyBytes
        let bytes: [UInt8]
        do {
            bytes = Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch is NIOTooManyBytesError {
            return MCPProxy.httpError(.contentTooLarge, .invalidRequest, "request body is larger than \(limit) bytes (--max-body-bytes)")
        } catch {
            return MCPProxy.httpError(.badRequest, .invalidRequest, "could not read the request body: \(error)")
        }
        let body: JSONRPCBody
        do {
            body = try JSONRPCBody.parse(bytes)
        } catch {
            return MCPProxy.httpError(.badRequest, error.code, error.message)
        }
        if proxy.readiness.isDraining, DrainAdmission.refuses(body, hasSession: call.session != nil) {
            return MCPProxy.drainingRefusal()
        }
        guard case .single(let message) = body else {
            return MCPProxy.httpError(
                .badRequest, .invalidRequest,
                "the merged endpoint takes one JSON-RPC message per request (batches were removed in MCP 2025-06-18); send each on its own, or use /mcp/NAME")
        }
        if let mismatch = MCPHeaderCheck.mismatch(
            methodHeader: request.headers[MCPProxy.mcpMethod], nameHeader: request.headers[MCPProxy.mcpName], message: message,
            era: ProtocolEra(protocolVersionHeader: request.headers[MCPProxy.protocolVersion]))
        {
            return MCPProxy.httpError(.badRequest, mismatch.code, mismatch.message)
        }
        return await call.post(message)
    }

    /// Records what a list showed; a reloaded servers file starts the table again.
    func recordClaims(_ claims: [MergedListPage.Claim], servers: [String]) {
        let conflicts = owners.withLock { state in
            if state.servers != servers { state = (servers, ResourceOwners(servers: servers)) }
            return state.owners.record(claims)
        }
        for conflict in conflicts { logger.warning("two servers list one resource", metadata: ["conflict": "\(conflict)"]) }
    }

    func owner(of uri: String, servers: [String]) -> String? {
        owners.withLock { $0.servers == servers ? $0.owners.owner(of: uri) : nil }
    }

    var info: JSONValue { serverInfo }

    /// An agent asking for URIs nobody lists would otherwise make every server list its resources on each request.
    func mayLearnResources() -> Bool {
        let now = ContinuousClock.now
        return lastLearned.withLock { last in
            if let last, now - last < .seconds(1) { return false }
            last = now
            return true
        }
    }
}
