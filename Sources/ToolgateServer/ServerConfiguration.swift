import ToolgateCore

/// Everything `toolgate serve` is told, already validated by the CLI.
public struct ServerConfiguration: Sendable {
    public var listenHost: String
    /// 0 picks any free port; the chosen address is logged and reported through `onListening`.
    public var listenPort: Int
    public var upstreamURL: String
    /// The server's name in the servers file (`/mcp/NAME`, the `server` label and audit field); nil for the one
    /// unnamed upstream of `--upstream` / `--upstream-command`.
    public var serverName: String?
    /// The upstream URL as logs, `/readyz` and errors show it: without userinfo and query, where keys live.
    public var upstreamShownURL: String { ShownURL.redacting(upstreamURL) }
    /// Added to every upstream request, already `${ENV}`-expanded.
    public var upstreamHeaders: [HTTPHeader]
    public var agentID: String
    public var keyPrefix: String
    public var maxBodyBytes: Int
    public var allowedOrigins: [String]
    public var allowedHosts: [String]
    /// Nil: every caller is grant `default`.
    public var grants: GrantTable?
    /// What a call gets when the limit store cannot answer.
    public var failMode: FailMode
    /// A client connection that sends nothing for this long while no response streams to it is closed.
    public var clientIdleTimeout: Duration
    /// `--admin-token-file`'s token: enables `/admin/*` for callers presenting it. Nil: nothing under `/admin`.
    public var adminToken: String?
    /// `toolgate stdio --grant`: every message is this grant's, and no bearer token is read.
    public var fixedGrant: String?
    /// `--shadow`: evaluate and count every call, deny none (DESIGN.md section 2).
    public var shadow = false
    /// `--drain-timeout`: how long in-flight calls and streams may finish after SIGTERM/SIGINT.
    public var drainTimeout: Duration = .seconds(30)
    /// `--max-connections`: client connections held at once; more wait in the listen backlog (`ConnectionBudget`).
    public var maxConnections = 4096
    /// `--name-separator`: tool and prompt names at the merged endpoint are `SERVER<separator>name`.
    public var nameSeparator = "__"

    public init(
        listenHost: String = "127.0.0.1", listenPort: Int = 8931, upstreamURL: String, upstreamHeaders: [HTTPHeader] = [],
        agentID: String, keyPrefix: String = "toolgate", maxBodyBytes: Int = 4 << 20, allowedOrigins: [String] = [],
        allowedHosts: [String] = [], grants: GrantTable? = nil, failMode: FailMode = .closed,
        clientIdleTimeout: Duration = .seconds(60)
    ) {
        self.clientIdleTimeout = clientIdleTimeout
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.upstreamURL = upstreamURL
        self.upstreamHeaders = upstreamHeaders
        self.agentID = agentID
        self.keyPrefix = keyPrefix
        self.maxBodyBytes = maxBodyBytes
        self.allowedOrigins = allowedOrigins
        self.allowedHosts = allowedHosts
        self.grants = grants
        self.failMode = failMode
    }

    public static let defaultGrant = "default"
}

/// `--fail-mode`: when Redis is unreachable or slow, deny (`closed`, answered `store_unavailable`) or allow (`open`).
public enum FailMode: String, Sendable, CaseIterable {
    case closed
    case open
}
