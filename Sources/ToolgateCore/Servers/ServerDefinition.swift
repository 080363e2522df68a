/// One MCP server of the servers file (DESIGN.md section 10), its values already `${ENV}`-expanded.
public struct ServerDefinition: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        /// Streamable HTTP.
        case http(url: String, headers: [HTTPHeader])
        /// A process speaking MCP on stdin/stdout: `command` with `arguments`, run without a shell.
        case stdio(command: String, arguments: [String], environment: [String: String], workingDirectory: String?)
    }

    public let name: String
    public let transport: Transport
    /// The server's `toolgate` key: what a single upstream sets with flags. Nil fields take the flags' values.
    public let settings: ServerSettings

    public init(name: String, transport: Transport, settings: ServerSettings = ServerSettings()) {
        self.name = name
        self.transport = transport
        self.settings = settings
    }

    public var isStdio: Bool {
        if case .stdio = transport { return true }
        return false
    }
}

/// Per-server settings, each the counterpart of an `--upstream-*` flag.
public struct ServerSettings: Sendable, Equatable {
    public enum Isolation: String, Sendable, Equatable {
        case shared
        case session
    }

    public var connectTimeout: Duration?
    public var headersTimeout: Duration?
    public var idleTimeout: Duration?
    public var maxConnections: Int?
    public var isolation: Isolation?
    public var maxProcesses: Int?
    public var startTimeout: Duration?

    public init() {}

    /// The keys of `toolgate`, with the flag each stands for.
    public static let keys: [(key: String, flag: String)] = [
        ("connectTimeout", "--upstream-connect-timeout"), ("headersTimeout", "--upstream-headers-timeout"),
        ("idleTimeout", "--upstream-idle-timeout"), ("maxConnections", "--upstream-max-connections"),
        ("isolation", "--upstream-isolation"), ("maxProcesses", "--upstream-max-processes"),
        ("startTimeout", "--upstream-start-timeout"),
    ]
}
