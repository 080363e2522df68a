import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// One server of the servers file, as `serve` starts it: its own copy of the listener's configuration (with its
/// name, upstream URL and headers), and the transport settings the flags give every server unless its `toolgate`
/// key says otherwise.
struct ServerLaunch {
    var name: String
    /// As the servers file has it: a reload compares it to tell a kept server from a changed one.
    var definition: ServerDefinition
    var configuration: ServerConfiguration
    /// An HTTP server's transport settings.
    var http: CurlUpstreamTransport.Configuration?
    /// A stdio server's.
    var stdio: StdioUpstreamTransport.Configuration?

    init(
        _ definition: ServerDefinition, listener: ServerConfiguration, defaults: CurlUpstreamTransport.Configuration,
        environment: [String: String], maximumLineBytes: Int
    ) {
        name = definition.name
        self.definition = definition
        configuration = listener
        configuration.serverName = definition.name
        let settings = definition.settings
        var transport = defaults
        if let value = settings.connectTimeout { transport.connectTimeout = value }
        if let value = settings.headersTimeout { transport.headersTimeout = value }
        if let value = settings.idleTimeout { transport.idleTimeout = value }
        if let value = settings.maxConnections { transport.maxConnectionsPerHost = value }
        switch definition.transport {
        case .http(let url, let headers):
            configuration.upstreamURL = url
            configuration.upstreamHeaders = headers
            http = transport
        case .stdio(let command, let arguments, let serverEnvironment, let workingDirectory):
            let commandLine = ShellQuoting.exec(command, arguments: arguments, workingDirectory: workingDirectory)
            configuration.upstreamURL = "stdio: " + ([command] + arguments).joined(separator: " ")
            configuration.upstreamHeaders = []
            stdio = StdioUpstreamTransport.Configuration(
                command: commandLine, environment: environment.merging(serverEnvironment) { _, server in server },
                initializeTimeout: settings.startTimeout ?? .seconds(30), maximumLineBytes: maximumLineBytes,
                headersTimeout: transport.headersTimeout, idleTimeout: transport.idleTimeout,
                isolation: settings.isolation == .session ? .session : .shared, maximumProcesses: settings.maxProcesses ?? 32)
            stdio?.initializeTimeoutSetting = "\"toolgate\": {\"startTimeout\": …} of server \"\(definition.name)\""
        }
    }
}
