import ToolgateCore

/// What a live MCP server lists, fetched the way an MCP client would: `initialize`, `notifications/initialized`,
/// then each list page by page, then `DELETE` of the session. For `check --upstream`, `scan` and the warning at
/// `serve` start; never on a call's path.
public enum UpstreamToolCatalog {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static let protocolVersion = "2025-06-18"

    public static func fetch(
        transport: any UpstreamTransport, url: String, headers: [HTTPHeader] = []
    ) async throws(Failure) -> [PolicyCoverage.UpstreamTool] {
        let inventory = try await fetchInventory(transport: transport, url: url, headers: headers, lists: [.tools])
        return inventory.tools.compactMap { tool in
            tool["name"]?.stringValue.map { PolicyCoverage.UpstreamTool(name: $0, inputSchema: tool["inputSchema"]) }
        }
    }

    /// What a server lists, every page of each: its tools, and (when asked, and when it announces them) its
    /// resources, resource templates and prompts, as the server wrote them.
    public struct Inventory: Sendable {
        public var serverInfo: JSONValue?
        public var instructions: String?
        public var tools: [JSONValue] = []
        public var resources: [JSONValue] = []
        public var resourceTemplates: [JSONValue] = []
        public var prompts: [JSONValue] = []
    }

    public enum List: Sendable, CaseIterable {
        case tools, resources, resourceTemplates, prompts

        var method: String {
            switch self {
            case .tools: "tools/list"
            case .resources: "resources/list"
            case .resourceTemplates: "resources/templates/list"
            case .prompts: "prompts/list"
            }
        }

        var key: String {
            switch self {
            case .tools: "tools"
            case .resources: "resources"
            case .resourceTemplates: "resourceTemplates"
            case .prompts: "prompts"
            }
        }

        var capability: String {
            switch self {
            case .tools: "tools"
            case .resources, .resourceTemplates: "resources"
            case .prompts: "prompts"
            }
        }
    }

    public static func fetchInventory(
        transport: any UpstreamTransport, url: String, headers: [HTTPHeader] = [], lists: [List] = List.allCases
    ) async throws(Failure) -> Inventory {
        var session: String?
        var version = protocolVersion
        let initialize: JSONValue = [
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": [
                "protocolVersion": .string(protocolVersion), "capabilities": [:],
                "clientInfo": ["name": "toolgate-check", "version": "1"],
            ],
        ]
        let (initialized, issued) = try await exchange(transport, url, headers, initialize, session: nil, version: nil, id: 1)
        session = issued
        if let negotiated = initialized["result"]?["protocolVersion"]?.stringValue { version = negotiated }
        _ = try? await exchange(
            transport, url, headers, ["jsonrpc": "2.0", "method": "notifications/initialized"], session: session, version: version, id: nil)
        var inventory = Inventory()
        inventory.serverInfo = initialized["result"]?["serverInfo"]
        inventory.instructions = initialized["result"]?["instructions"]?.stringValue
        let capabilities = initialized["result"]?["capabilities"]
        var nextID = 2
        for list in lists where list == .tools || capabilities?[list.capability] != nil {
            var items: [JSONValue] = []
            var cursor: JSONValue?
            for _ in 0..<50 {
                var params: JSONObject = [:]
                if let cursor { params["cursor"] = cursor }
                let id = JSONValue.number(JSONNumber(nextID))
                nextID += 1
                let request: JSONValue = ["jsonrpc": "2.0", "id": id, "method": .string(list.method), "params": .object(params)]
                let (answer, _) = try await exchange(transport, url, headers, request, session: session, version: version, id: id)
                if let error = answer["error"] {
                    throw Failure(description: "\(url) refused \(list.method): \(JSONWriter.string(error))")
                }
                items += answer["result"]?[list.key]?.arrayValue ?? []
                cursor = answer["result"]?["nextCursor"]
                if cursor == nil || cursor == .null { break }
            }
            switch list {
            case .tools: inventory.tools = items
            case .resources: inventory.resources = items
            case .resourceTemplates: inventory.resourceTemplates = items
            case .prompts: inventory.prompts = items
            }
        }
        if let session {
            var all = headers
            all.append(HTTPHeader("Mcp-Session-Id", session))
            if let response = try? await transport.send(UpstreamRequest(method: .delete, url: url, headers: all)) {
                response.body.cancel()
            }
        }
        return inventory
    }

    /// One POST; the answer to `id` (from a JSON body or an event stream), and the session id the server issued.
    private static func exchange(
        _ transport: any UpstreamTransport, _ url: String, _ headers: [HTTPHeader], _ message: JSONValue, session: String?,
        version: String?, id: JSONValue?
    ) async throws(Failure) -> (JSONValue, String?) {
        var all = headers + [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Accept", "application/json, text/event-stream")]
        if let session { all.append(HTTPHeader("Mcp-Session-Id", session)) }
        if let version { all.append(HTTPHeader("MCP-Protocol-Version", version)) }
        let method = message["method"]?.stringValue ?? "?"
        let response: UpstreamResponse
        do {
            response = try await transport.send(UpstreamRequest(method: .post, url: url, headers: all, body: JSONWriter.bytes(message)))
        } catch {
            throw Failure(description: "cannot reach \(url): \(error.message)")
        }
        var body: [UInt8] = []
        do throws(UpstreamError) {
            while let chunk = try await response.body.next() {
                body += chunk
                if body.count > 32 << 20 { throw UpstreamError(code: .transport, message: "answer larger than 32 MiB") }
            }
        } catch {
            throw Failure(description: "\(url) broke off its answer to \(method): \(error.message)")
        }
        let issued = response.header("mcp-session-id")
        guard let id else { return (.null, issued) }
        guard (200..<300).contains(response.status) else {
            throw Failure(description: "\(url) answered \(method) with HTTP \(response.status): is this the MCP endpoint?")
        }
        var messages: [JSONValue] = []
        if (response.header("content-type") ?? "").lowercased().hasPrefix("text/event-stream") {
            var parser = SSEParser()
            let events = (try? parser.feed(body + [0x0A, 0x0A])) ?? []
            messages = events.compactMap { try? JSONParser.parse(Array($0.data.utf8)) }
        } else if let value = try? JSONParser.parse(body) {
            messages = value.arrayValue ?? [value]
        }
        guard let answer = messages.first(where: { $0["id"] == id }) else {
            throw Failure(description: "\(url) sent no JSON-RPC answer to \(method) (HTTP \(response.status)): is this the MCP endpoint?")
        }
        return (answer, issued)
    }
}
