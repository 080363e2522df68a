/// Who is calling: the subjects that limit scopes count against.
public struct Identity: Sendable, Equatable {
    /// The grant the bearer token maps to; `default` when toolgate runs without `--grants`.
    public let grant: String
    /// The MCP session (`Mcp-Session-Id`), when the request belongs to one the upstream issued to this grant
    /// (`SessionRegistry`); nil otherwise, and `session` limits then count against the grant.
    public let session: String?
    /// This host (`--agent-id`).
    public let agent: String

    /// Hash-tag contents per scope (`grant:<hash>`), computed once: hashing is most of a decision's cost,
    /// and a server reuses one identity per grant, changing only the session.
    let grantTag: String
    let agentTag: String
    let sessionTag: String

    public init(grant: String, session: String? = nil, agent: String) {
        self.grant = grant
        self.agent = agent
        self.grantTag = "grant:" + CounterKey.subjectHash(grant)
        self.agentTag = "agent:" + CounterKey.subjectHash(agent)
        self.session = session
        self.sessionTag = Self.sessionTag(session: session, grant: grant)
    }

    /// The same caller in another session; only the session's subject is hashed again.
    public func with(session: String?) -> Identity {
        if session == self.session { return self }
        return Identity(grant: grant, session: session, agent: agent, grantTag: grantTag, agentTag: agentTag)
    }

    private init(grant: String, session: String?, agent: String, grantTag: String, agentTag: String) {
        self.grant = grant
        self.session = session
        self.agent = agent
        self.grantTag = grantTag
        self.agentTag = agentTag
        self.sessionTag = Self.sessionTag(session: session, grant: grant)
    }

    /// A session's subject is the grant and the session id together, so one grant can never touch another's
    /// session counters even with the same id.
    private static func sessionTag(session: String?, grant: String) -> String {
        guard let session else { return "session:" + CounterKey.subjectHash(CounterKey.sessionFallbackSubject(grant: grant)) }
        return "session:" + CounterKey.subjectHash(CounterKey.sessionSubject(grant: grant, session: session))
    }

    public static func == (lhs: Identity, rhs: Identity) -> Bool {
        lhs.grant == rhs.grant && lhs.session == rhs.session && lhs.agent == rhs.agent
    }
}

/// A `tools/call` as the policy sees it.
public struct ToolCall: Sendable {
    public let name: String
    /// The call's `arguments` object; `.object([])` when the call sent none.
    public let arguments: JSONValue
    /// A follow-up round's `requestState` (2026-07-28 multi-round calls), when it is a string.
    public let requestState: String?

    public init(name: String, arguments: JSONValue = .object(JSONObject()), requestState: String? = nil) {
        self.name = name
        self.arguments = arguments
        self.requestState = requestState
    }
}
