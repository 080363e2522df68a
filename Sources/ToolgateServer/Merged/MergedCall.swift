import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// One agent request at the merged endpoint: what it goes to (one server, every server, or toolgate itself) and
/// how the answers come back.
struct MergedCall: Sendable {
    let endpoint: MergedEndpoint
    /// Servers-file order.
    let servers: [ServerExchange]
    let names: MergedNames
    let session: MergedSession?
    /// Who is asking: a session opened here belongs to this grant alone.
    let grant: String
    let head: HTTPRequest
    let agent: (any AgentPresence)?
    let format: ResponseFormat

    var logger: Logger { endpoint.logger }
    var serverNames: [String] { servers.map(\.server) }

    /// The servers this request may reach: with a session, those that opened one.
    var reachable: [ServerExchange] {
        guard let session else { return servers }
        return servers.filter { session.upstreams[$0.server] != nil }
    }

    func post(_ message: JSONRPCMessage) async -> Response {
        switch message.kind {
        case .request(let method):
            guard let id = message.id else { return MCPProxy.httpError(.badRequest, .invalidRequest, "a request needs an id") }
            switch method {
            case "initialize": return await initialize(message, id: id)
            case "server/discover": return await discover(message, id: id)
            case "ping": return answer(JSONRPCResponse.result(id: id, .object([:])))
            case "logging/setLevel": return await everyServer(message, id: id)
            case "subscriptions/listen": return await listen(message, id: id)
            default:
                if let kind = MergedListKind(method: method) { return await list(kind, message, id: id) }
                return await routed(message, id: id, method: method)
            }
        case .notification(let method):
            if method == "notifications/cancelled", let requestID = message.params?["requestId"],
                let server = session?.server(handling: requestID), let exchange = servers.first(where: { $0.server == server })
            {
                return await send(message.raw, to: exchange)
            }
            await withTaskGroup(of: Void.self) { group in
                for exchange in reachable { group.addTask { _ = await self.send(message.raw, to: exchange) } }
            }
            return Response(status: .accepted)
        case .response:
            guard let session, let id = message.id, let (server, own) = session.serverRequest(answeredBy: id),
                let exchange = servers.first(where: { $0.server == server })
            else {
                return MCPProxy.httpError(.badRequest, .invalidRequest, "no server is waiting for an answer with this id")
            }
            guard case .object(var raw) = message.raw else { return Response(status: .accepted) }
            raw["id"] = own
            return await send(.object(raw), to: exchange)
        }
    }

    // MARK: sessions

    private func initialize(_ message: JSONRPCMessage, id: JSONValue) async -> Response {
        let body = JSONWriter.bytes(message.raw)
        let opened = await gather(servers) { await self.open($0, with: body, id: id) }
        var upstreams: [String: MergedSession.Upstream] = [:]
        var results: [MergedHandshake.Answer] = []
        var problems: [String] = []
        for (exchange, outcome) in zip(servers, opened) {
            switch outcome {
            case .success(let (upstream, result)):
                results.append(.init(server: exchange.server, result: result))
                upstreams[exchange.server] = upstream
            case .failure(let problem):
                problems.append("\(exchange.server): \(problem.why)")
            }
        }
        if !problems.isEmpty {
            logger.warning("servers left out of a merged session until a call to one of them finds it up",
                           metadata: ["servers": "\(problems.joined(separator: "; "))"])
        }
        guard !results.isEmpty else {
            return answer(JSONRPCResponse.error(
                id: id, code: .internalError, message: "no MCP server answered initialize: " + problems.joined(separator: "; ")))
        }
        let merged = MergedSession(id: Self.newSessionID(), grant: grant, upstreams: upstreams, opening: body, openingID: id)
        endpoint.sessions.add(merged)
        var response = answer(JSONRPCResponse.result(
            id: id, MergedHandshake.initializeResult(results, serverInfo: endpoint.info, separator: endpoint.separator)))
        response.headers[MCPProxy.sessionID] = merged.id
        return response
    }

    struct OpenFailure: Error {
        let why: String
    }

    /// Sends the agent's `initialize` to one server: its session, revision and capabilities, and its result.
    private func open(
        _ exchange: ServerExchange, with body: [UInt8], id: JSONValue
    ) async -> Result<(MergedSession.Upstream, JSONValue), OpenFailure> {
        var fresh = head
        fresh.method = .post
        fresh.headerFields[MCPProxy.sessionID] = nil
        fresh.headerFields[MCPProxy.protocolVersion] = nil
        let response = await exchange.send(head: fresh, body: body, agent: nil, mergedSession: nil)
        let reply = ServerExchange.answer(to: id, in: await ServerExchange.messages(of: response))
        guard let result = reply?["result"] else {
            return .failure(OpenFailure(why: reply?["error"]?["message"]?.stringValue ?? "HTTP \(response.status.code)"))
        }
        let upstream = MergedSession.Upstream(
            session: response.headers[MCPProxy.sessionID], protocolVersion: result["protocolVersion"]?.stringValue,
            capabilities: result["capabilities"] ?? .object([:]))
        return .success((upstream, result))
    }

    /// A server that was down when the session began, opened now that a call needs it (at most every few seconds
    /// per session while it stays down), and told the session is initialized, as the agent told the others.
    private func reopen(_ exchange: ServerExchange, in session: MergedSession) async -> Bool {
        guard session.mayRetry(exchange.server) else { return false }
        guard case .success(let (upstream, _)) = await open(exchange, with: session.opening, id: session.openingID) else {
            return false
        }
        session.adopt(upstream, for: exchange.server)
        let initialized: JSONValue = ["jsonrpc": "2.0", "method": "notifications/initialized"]
        await Self.drain(await send(initialized, to: exchange))
        logger.info("a server left out of a merged session at its start joined it", metadata: ["server": "\(exchange.server)"])
        return true
    }

    private func discover(_ message: JSONRPCMessage, id: JSONValue) async -> Response {
        let replies = await gather(servers) { exchange in
            await ServerExchange.answer(to: id, in: ServerExchange.messages(of: self.send(message.raw, to: exchange)))
        }
        var results: [MergedHandshake.Answer] = []
        for (exchange, reply) in zip(servers, replies) {
            if let result = reply?["result"] { results.append(.init(server: exchange.server, result: result)) }
        }
        guard !results.isEmpty else {
            return answer(JSONRPCResponse.error(id: id, code: .internalError, message: "no MCP server answered server/discover"))
        }
        return answer(JSONRPCResponse.result(
            id: id, MergedHandshake.discoverResult(results, serverInfo: endpoint.info, separator: endpoint.separator)))
    }

    func endSession(_ session: MergedSession) async {
        endpoint.sessions.remove(session.id)
        await withTaskGroup(of: Void.self) { group in
            for exchange in reachable where session.upstreams[exchange.server]?.session != nil {
                group.addTask {
                    let response = await exchange.send(
                        head: self.head(for: exchange.server, method: .delete), body: [], agent: nil, mergedSession: session.id)
                    await Self.drain(response)
                }
            }
        }
    }

    private static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let word = String(generator.next() as UInt32, radix: 16)
            return String(repeating: "0", count: 8 - word.count) + word
        }.joined()
    }

    // MARK: lists

    private func list(_ kind: MergedListKind, _ message: JSONRPCMessage, id: JSONValue) async -> Response {
        var pending: [MergedCursor.Entry]
        switch message.params?["cursor"] {
        case nil, .null?:
            pending = MergedCursor.first(servers: reachable.filter { offers(kind, $0.server) }.map(\.server)).pending
        case .string(let text)?:
            do {
                pending = try MergedCursor(decoding: text).pending
            } catch {
                return answer(JSONRPCResponse.error(id: id, code: error.code, message: error.message))
            }
        default:
            return answer(JSONRPCResponse.error(id: id, code: .invalidParams, message: "cursor must be a string"))
        }
        let byName = Dictionary(reachable.map { ($0.server, $0) }, uniquingKeysWith: { first, _ in first })
        pending = pending.filter { byName[$0.server] != nil }
        let outcomes = await gather(pending) { entry -> MergedListPage.Outcome in
            var params = message.params?.objectValue ?? JSONObject()
            params["cursor"] = entry.cursor.map(JSONValue.string)
            var request = message.raw.objectValue ?? JSONObject()
            request["params"] = params.members.isEmpty ? nil : .object(params)
            let response = await self.send(.object(request), to: byName[entry.server]!)
            let reply = ServerExchange.answer(to: id, in: await ServerExchange.messages(of: response))
            if let result = reply?["result"] { return .page(result) }
            if reply?["error"]?["code"] == .number(JSONNumber(JSONRPCErrorCode.methodNotFound.rawValue)) {
                return .page(.object([:]))  // a server without this list has nothing in it
            }
            return .failed(reply?["error"]?["message"]?.stringValue ?? "HTTP \(response.status.code)")
        }
        let page = MergedListPage.merge(
            kind, pages: zip(pending, outcomes).map { ($0.server, $1) }, names: names)
        endpoint.recordClaims(page.claims, servers: serverNames)
        for (server, why) in page.failed {
            logger.warning("server left out of a merged list", metadata: ["server": "\(server)", "list": "\(kind.method)", "problem": "\(why)"])
        }
        for item in page.leftOut {
            logger.warning("left out of the merged list", metadata: ["server": "\(item.server)", "why": "\(item.why)"])
        }
        return answer(JSONRPCResponse.result(id: id, page.result))
    }

    /// A server offers a list when its `initialize` announced the capability; without a session, every server is asked.
    private func offers(_ kind: MergedListKind, _ server: String) -> Bool {
        guard let upstream = session?.upstreams[server] else { return true }
        return upstream.capabilities[kind.capability] != nil
    }

    // MARK: routing

    /// `logging/setLevel`: every server gets it; the agent gets one answer.
    private func everyServer(_ message: JSONRPCMessage, id: JSONValue) async -> Response {
        let replies = await gather(reachable) { exchange in
            await ServerExchange.answer(to: id, in: ServerExchange.messages(of: self.send(message.raw, to: exchange)))
        }
        if replies.contains(where: { $0?["result"] != nil }) || replies.isEmpty {
            return answer(JSONRPCResponse.result(id: id, .object([:])))
        }
        return answer(replies.compactMap { $0 }.first ?? JSONRPCResponse.error(id: id, code: .internalError, message: "no server answered"))
    }

    private func routed(_ message: JSONRPCMessage, id: JSONValue, method: String) async -> Response {
        let route: MergedRoute
        switch MergedRoute.find(message, method: method, names: names, owner: { uri in
            self.endpoint.owner(of: uri, servers: self.serverNames)
        }) {
        case .routed(let found): route = found
        case .refused(let failure):
            if method == "tools/call", failure.code == .invalidParams, message.params?["name"]?.stringValue != nil {
                // No server has a tool by that name: a decision like any other, counted as the servers count theirs.
                servers[0].proxy.metrics.toolCall(tool: Evaluator.otherToolLabel, decision: .unknownTool)
            }
            return answer(JSONRPCResponse.error(id: id, code: failure.code, message: failure.message))
        case .unknownResource(let uri):
            // Nobody listed it yet: learn every server's resources and templates, then look again.
            if endpoint.mayLearnResources() { await learnResources(id: id) }
            guard let server = endpoint.owner(of: uri, servers: serverNames) else {
                return answer(JSONRPCResponse.error(
                    id: id, code: .resourceNotFound, message: "Resource not found: no server lists \(uri.prefix(200))",
                    data: ["uri": .string(uri)]))
            }
            route = MergedRoute(server: server, message: message.raw)
        }
        guard let exchange = servers.first(where: { $0.server == route.server }) else {
            return answer(JSONRPCResponse.error(id: id, code: .internalError, message: "server \"\(route.server)\" is not configured"))
        }
        if let session, session.upstreams[route.server] == nil, await !reopen(exchange, in: session) {
            return answer(JSONRPCResponse.error(
                id: id, code: .internalError,
                message: "server \"\(route.server)\" is unavailable: it did not answer initialize when this session began, nor since"))
        }
        session?.started(id, server: route.server)
        let response = await exchange.send(
            head: head(for: route.server, method: .post, message: route.message), body: JSONWriter.bytes(route.message), agent: agent,
            mergedSession: session?.id)
        guard let session, response.headers[.contentType]?.lowercased().hasPrefix("text/event-stream") == true else {
            session?.ended(id)
            return response
        }
        return MergedStream.relaying(response, from: route.server, session: session, whenDone: { session.ended(id) })
    }

    private func learnResources(id: JSONValue) async {
        for kind in [MergedListKind.resources, .resourceTemplates] {
            let holders = reachable.filter { offers(kind, $0.server) }
            let pages = await gather(holders) { exchange -> MergedListPage.Outcome in
                let request: JSONValue = ["jsonrpc": "2.0", "id": id, "method": .string(kind.method)]
                let reply = ServerExchange.answer(to: id, in: await ServerExchange.messages(of: self.send(request, to: exchange)))
                return reply?["result"].map { .page($0) } ?? .failed("no answer")
            }
            let page = MergedListPage.merge(kind, pages: zip(holders, pages).map { ($0.server, $1) }, names: names)
            endpoint.recordClaims(page.claims, servers: serverNames)
        }
    }

    // MARK: the GET stream

    /// Every server's stream of its own messages, as one: notifications (`list_changed`, `resources/updated`, logging)
    /// and server requests, whose ids are toolgate's so the agent's answers find their server.
    func listen() async -> Response {
        guard let session else {
            return MCPProxy.httpError(.methodNotAllowed, .invalidRequest, "the merged endpoint's GET stream belongs to a session: initialize first")
        }
        let opened = await gather(reachable) { exchange in
            await exchange.send(head: self.head(for: exchange.server, method: .get), body: [], agent: nil, mergedSession: session.id)
        }
        var streams: [(String, Response)] = []
        for (exchange, response) in zip(reachable, opened) {
            if response.status == .ok, response.headers[.contentType]?.lowercased().hasPrefix("text/event-stream") == true {
                streams.append((exchange.server, response))
            } else {
                await Self.drain(response)
            }
        }
        guard !streams.isEmpty else {
            return MCPProxy.httpError(.methodNotAllowed, .invalidRequest, "no server behind this endpoint offers a GET stream")
        }
        return MergedStream.fanIn(streams, session: session, logger: logger)
    }

    /// Revision 2026-07-28's `subscriptions/listen`: every server's stream as one; a server without one is left out.
    private func listen(_ message: JSONRPCMessage, id: JSONValue) async -> Response {
        let opened = await gather(reachable) { await self.send(message.raw, to: $0) }
        var streams: [(String, Response)] = []
        var refusal: Response?
        for (exchange, response) in zip(reachable, opened) {
            if response.status == .ok, response.headers[.contentType]?.lowercased().hasPrefix("text/event-stream") == true {
                streams.append((exchange.server, response))
            } else if refusal == nil {
                refusal = response
            } else {
                await Self.drain(response)
            }
        }
        guard !streams.isEmpty else {
            return refusal ?? answer(JSONRPCResponse.error(id: id, code: .internalError, message: "no MCP server is reachable"))
        }
        if let refusal { await Self.drain(refusal) }
        return MergedStream.listen(streams, id: id)
    }

    // MARK: plumbing

    /// The agent's head as `server` must see it for `message`: its own session and revision, and in the
    /// per-request era `Mcp-Method` and `Mcp-Name` of the message actually sent (a renamed tool, a list toolgate asks for).
    func head(for server: String, method: HTTPRequest.Method, message: JSONValue? = nil) -> HTTPRequest {
        var head = head
        head.method = method
        head.headerFields[MCPProxy.sessionID] = session?.upstreams[server]?.session
        if let version = session?.upstreams[server]?.protocolVersion, head.headerFields[MCPProxy.protocolVersion] != nil {
            head.headerFields[MCPProxy.protocolVersion] = version
        }
        if head.headerFields[MCPProxy.mcpMethod] != nil, let message, let sent = message["method"]?.stringValue {
            head.headerFields[MCPProxy.mcpMethod] = sent
            let name: String? =
                switch sent {
                case "tools/call", "prompts/get": message["params"]?["name"]?.stringValue
                case "resources/read": message["params"]?["uri"]?.stringValue
                default: nil
                }
            head.headerFields[MCPProxy.mcpName] = name.map(ProxyHeaders.nameHeaderValue)
        }
        return head
    }

    private func send(_ message: JSONValue, to exchange: ServerExchange) async -> Response {
        await exchange.send(
            head: head(for: exchange.server, method: .post, message: message), body: JSONWriter.bytes(message), agent: nil,
            mergedSession: session?.id)
    }

    private func answer(_ value: JSONValue) -> Response { MCPProxy.answer(value, format: format, retryAfter: nil) }

    static func drain(_ response: Response) async {
        _ = try? await response.body.write(BodyCollector(limit: 1 << 20).writer)
    }

    /// Runs `work` for every element at once; results in the elements' order.
    private func gather<Element: Sendable, Result: Sendable>(
        _ elements: [Element], _ work: @escaping @Sendable (Element) async -> Result
    ) async -> [Result] {
        await withTaskGroup(of: (Int, Result).self) { group in
            for (index, element) in elements.enumerated() { group.addTask { (index, await work(element)) } }
            var results = [Result?](repeating: nil, count: elements.count)
            for await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }
}
