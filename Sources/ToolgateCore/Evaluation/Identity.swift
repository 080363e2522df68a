/// Who is calling: the subjects that limit scopes count against.
public struct Identity: Sendable, Equatable {
    /// The grant the bearer token maps to; `default` when toolgate runs without `--grants`.
    public let grant: String
    /// The MCP session (`Mcp-Session-Id`), when the request has one.
    public let session: String?
    /// This host (`--agent-id`).
    public let agent: String

    public init(grant: String, session: String? = nil, agent: String) {
        self.grant = grant
        self.session = session
        self.agent = agent
    }
}

/// A `tools/call` as the policy sees it.
public struct ToolCall: Sendable {
    public let name: String
    /// The call's `arguments` object; `.object([])` when the call sent none.
    public let arguments: JSONValue

    public init(name: String, arguments: JSONValue = .object(JSONObject())) {
        self.name = name
        self.arguments = arguments
    }
}
