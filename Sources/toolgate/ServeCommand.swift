import ArgumentParser
import Foundation
import HTTPTypes
import Logging
import ServiceLifecycle
import ToolgateCore
import ToolgateRedis
import ToolgateServer
import ToolgateUpstream

/// `toolgate serve`: the sidecar.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sidecar in front of an upstream MCP server.",
        discussion: "Every flag also reads from TOOLGATE_<FLAG> (e.g. TOOLGATE_POLICY); a flag on the command line wins. SIGHUP reloads the policy; SIGTERM and SIGINT drain in-flight calls and exit 0."
    )

    @OptionGroup var options: ServeOptions
    @OptionGroup var listener: ListenerOptions

    func run() async throws {
        let settings: ServeSettings
        do {
            settings = try ServeSettings(options, listener: listener, environment: EnvironmentOptions())
        } catch {
            for line in error.lines { printError(line) }
            throw ExitCode(error.exitCode)
        }
        try await ToolgateProcess.run(settings, command: "serve")
    }

    /// What went wrong, in terms of the flags: NIO names the system call, not the address or the flag.
    static func explain(_ error: any Error, settings: ServeSettings) -> String {
        let text = String(describing: error)
        var address = "\(settings.server.listenHost):\(settings.server.listenPort) (--listen)"
        if let (host, port) = settings.metricsListen { address += " or \(host):\(port) (--metrics-listen)" }
        if let (host, port) = settings.adminListen { address += " or \(host):\(port) (--admin-listen)" }
        if text.contains("Address already in use") {
            return "toolgate: cannot listen on \(address): the address is already in use by another process; "
                + "pick another port (port 0 takes any free one)"
        }
        if text.contains("Cannot assign requested address") || text.contains("Address not available") {
            return "toolgate: cannot listen on \(address): this machine has no such address"
        }
        if text.contains("Permission denied") {
            return "toolgate: cannot listen on \(address): permission denied (ports below 1024 need privileges)"
        }
        return "toolgate: \(text)"
    }
}

/// The flags of `serve`'s HTTP front: who may connect and how. `stdio` has one client on stdin/stdout, so it does not
/// offer them (its help leaves them out) and refuses them by name.
struct ListenerOptions: ParsableArguments {
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:8931; port 0 = any free port).") var listen: String?
    @Option(help: "Grants file mapping bearer tokens to grant names (absent: every caller is grant \"default\").") var grants: String?
    @Option(name: .customLong("admin-token-file"), help: "File holding the admin token; enables /admin (approvals API and page).")
    var adminTokenFile: String?
    @Option(name: .customLong("admin-listen"), help: "HOST:PORT serving /admin on a listener of its own (then not on --listen's).")
    var adminListen: String?
    @Option(name: .customLong("max-connections"), help: "Most client connections held at once (default 4096); more wait until one closes.")
    var maxConnections: String?
    @Option(name: .customLong("client-idle-timeout"), help: "Seconds a client connection may send nothing while no response streams to it (default 60).")
    var clientIdleTimeout: String?
    @Option(name: .customLong("allowed-origin"), help: "Browser origin allowed to call /mcp. Repeatable.") var allowedOrigins: [String] = []
    @Option(name: .customLong("allowed-host"), help: "Host name accepted when not bound to loopback. Repeatable.") var allowedHosts: [String] = []

    /// Each flag given on the command line, by its name.
    var given: [String] {
        var flags: [String] = []
        if listen != nil { flags.append("listen") }
        if grants != nil { flags.append("grants") }
        if adminTokenFile != nil { flags.append("admin-token-file") }
        if adminListen != nil { flags.append("admin-listen") }
        if maxConnections != nil { flags.append("max-connections") }
        if clientIdleTimeout != nil { flags.append("client-idle-timeout") }
        if !allowedOrigins.isEmpty { flags.append("allowed-origin") }
        if !allowedHosts.isEmpty { flags.append("allowed-host") }
        return flags
    }
}

/// The flags `serve` and `stdio` share: the policy, the upstream, the store, and operations.
struct ServeOptions: ParsableArguments {
    @Option(help: "Policy file (JSON, or YAML for .yaml/.yml).") var policy: String?
    @Option(help: "Upstream MCP endpoint, e.g. http://127.0.0.1:8000/mcp.") var upstream: String?
    @Option(help: "Servers file (JSON, or YAML for .yaml/.yml) in an MCP client's format, {\"mcpServers\": {NAME: {\"url\": …} | {\"command\": …}}}: every server at /mcp/NAME, instead of --upstream.")
    var servers: String?
    @Option(name: .customLong("name-separator"), help: "With --servers: tool and prompt names on the merged endpoint are SERVER<separator>NAME (default \"__\").")
    var nameSeparator: String?
    @Option(name: .customLong("upstream-command"), help: "Run a stdio MCP server instead of --upstream, e.g. 'npx -y some-mcp-server' (run by /bin/sh -c).")
    var upstreamCommand: String?
    @Option(name: .customLong("upstream-isolation"), help: "--upstream-command: shared (one process for every client, default) or session (one per client session; per grant without one).")
    var upstreamIsolation: String?
    @Option(name: .customLong("upstream-max-processes"), help: "Most --upstream-command processes under --upstream-isolation session (default 32); past it a new session gets HTTP 503.")
    var upstreamMaxProcesses: String?
    @Option(name: .customLong("upstream-start-timeout"), help: "Seconds --upstream-command has to answer initialize before toolgate gives up on it (default 30).")
    var upstreamStartTimeout: String?
    @Option(name: .customLong("upstream-env"), help: "NAME=VALUE in --upstream-command's environment; ${ENV_VAR} is expanded. Repeatable.")
    var upstreamEnv: [String] = []
    @Option(name: .customLong("metrics-listen"), help: "HOST:PORT serving /metrics, /healthz and /readyz too (probes and scrapes).")
    var metricsListen: String?
    @Option(
        help: "redis://[user:pass@]host:port[/db] (rediss:// for TLS) for limits shared by a fleet (absent: the embedded in-memory store). Repeatable: several seed nodes of one Redis Cluster. Or redis+sentinel://[user:pass@]host:26379[,host:26379…]/MASTER[/db] (rediss+sentinel:// for TLS) for a master found through Sentinel.")
    var redis: [String] = []
    @Option(name: .customLong("redis-sentinel-password"), help: "Password of the sentinels of a redis+sentinel:// URL (the master's is in the URL).")
    var redisSentinelPassword: String?
    @Option(name: .customLong("redis-ca-file"), help: "rediss://: PEM CA certificates to verify Redis with (default: the system CA store).")
    var redisCAFile: String?
    @Option(name: .customLong("redis-cert-file"), help: "rediss://: PEM client certificate for mutual TLS (with --redis-key-file).")
    var redisCertFile: String?
    @Option(name: .customLong("redis-key-file"), help: "rediss://: PEM private key of --redis-cert-file.")
    var redisKeyFile: String?
    @Option(name: .customLong("redis-tls-server-name"), help: "rediss://: the name sent as SNI and verified in Redis's certificate (default: each URL's or node's host), for nodes known by IP.")
    var redisTLSServerName: String?
    @Option(name: .customLong("key-prefix"), help: "Prefix of limit keys (default toolgate).") var keyPrefix: String?
    @Option(name: .customLong("fail-mode"), help: "closed (deny, default) or open (allow) while Redis is unreachable or slow.")
    var failMode: String?
    @Option(name: .customLong("redis-timeout"), help: "Per-operation Redis timeout in milliseconds (default 100).") var redisTimeout: String?
    @Option(
        name: .customLong("redis-wait-replicas"),
        help: "Admit a call that consumed a limit only once N replicas hold the write (WAIT N, --redis-timeout); otherwise refund it and deny store_unavailable (default 0: do not wait).")
    var redisWaitReplicas: String?
    @Option(name: .customLong("agent-id"), help: "This host's id for agent-scoped limits (default: the host name).") var agentID: String?
    @Option(name: .customLong("upstream-header"), help: "\"Name: value\" added upstream; ${ENV_VAR} is expanded. Repeatable.")
    var upstreamHeaders: [String] = []
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body (default 4194304); larger gets HTTP 413.") var maxBodyBytes: String?
    @Option(name: .customLong("upstream-connect-timeout"), help: "Seconds to connect upstream (default 5).") var upstreamConnectTimeout: String?
    @Option(name: .customLong("upstream-headers-timeout"), help: "Seconds to the upstream's response headers (default 300).")
    var upstreamHeadersTimeout: String?
    @Option(name: .customLong("upstream-idle-timeout"), help: "Longest silence inside a streamed body, in seconds (default 300).")
    var upstreamIdleTimeout: String?
    @Option(name: .customLong("upstream-max-connections"), help: "Most connections open to the upstream at once (default 256); more requests wait for one.")
    var upstreamMaxConnections: String?
    @Flag(name: .customLong("shadow"), help: "Evaluate and count every call, deny none (decision shadow_denied instead).")
    var shadow = false
    @Option(name: .customLong("audit-log"), help: "File (or - for stdout) for one JSON line per tools/call decision; reopened on SIGHUP.")
    var auditLog: String?
    @Option(name: .customLong("drain-timeout"), help: "Seconds in-flight calls and streams may take to finish on SIGTERM/SIGINT (default 30).")
    var drainTimeout: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel: String?
}

/// Flags and their environment variables, checked and converted.
struct ServeSettings {
    var policyPath: String
    var policy: Policy
    var server: ServerConfiguration
    var upstream: CurlUpstreamTransport.Configuration
    /// `--upstream-command`: the stdio upstream, instead of `--upstream`'s URL.
    var upstreamCommand: StdioUpstreamTransport.Configuration?
    /// `--servers`: every server of the file (or, for `stdio --server NAME`, that one), instead of the two above.
    var namedServers: [ServerLaunch] = []
    var serversPath: String?
    /// The servers file as read at start, and the environment a stdio server inherits (a reload needs both).
    var serversFile: ServersFile?
    var inheritedEnvironment: [String: String] = [:]
    var logLevel: Logger.Level
    /// Nil: the embedded in-memory store. Its `url` is the first of `redisSeeds`.
    var redis: RedisClient.Configuration?
    /// Every `--redis`: one standalone server (or a cluster node found out at start), or several cluster seeds.
    var redisSeeds: [RedisURL] = []
    /// `--redis redis+sentinel://…`, with `--redis-sentinel-password`.
    var redisSentinel: RedisSentinelURL?
    var redisSentinelPassword: String?
    /// `--redis-wait-replicas`: nil when decisions do not wait for replicas.
    var redisReplicaWait: RedisDeployment.ReplicaWait?
    /// `--metrics-listen`: a second listener for `/metrics`, `/healthz` and `/readyz`.
    var metricsListen: (host: String, port: Int)?
    /// `--admin-listen`: `/admin` on a listener of its own, and not on `--listen`'s.
    var adminListen: (host: String, port: Int)?
    /// `--grants`, read again on SIGHUP with the policy; and the environment its `tokenEnv` entries read.
    var grantsPath: String?
    var environment: [String: String] = [:]
    /// `--audit-log`: a path, or `-` for standard output.
    var auditLogPath: String?

    init(
        policyPath: String, policy: Policy, server: ServerConfiguration, upstream: CurlUpstreamTransport.Configuration,
        logLevel: Logger.Level, redis: RedisClient.Configuration? = nil
    ) {
        self.policyPath = policyPath
        self.policy = policy
        self.server = server
        self.upstream = upstream
        self.logLevel = logLevel
        self.redis = redis
    }

    struct Failure: Error {
        let lines: [String]
        /// 64 for a usage error, 1 for a file that does not validate.
        let exitCode: Int32
    }

    /// `listener` nil: `stdio`, which has no HTTP front (its flags, and their variables, are not read).
    init(
        _ command: ServeOptions, listener: ListenerOptions?, environment env: EnvironmentOptions, commandName: String = "serve",
        serverSelection: String? = nil
    ) throws(Failure) {
        func usage(_ message: String) -> Failure { Failure(lines: ["toolgate \(commandName): \(message)"], exitCode: 64) }
        func listenerValue(_ keyPath: KeyPath<ListenerOptions, String?>, _ flag: String) -> String? {
            listener.flatMap { env.value($0[keyPath: keyPath], flag: flag) }
        }
        func listenerValues(_ keyPath: KeyPath<ListenerOptions, [String]>, _ flag: String) -> [String] {
            listener.map { env.values($0[keyPath: keyPath], flag: flag) } ?? []
        }
        guard let policyPath = env.value(command.policy, flag: "policy") else {
            throw usage("missing --policy FILE (or TOOLGATE_POLICY)")
        }
        let upstreamText = env.value(command.upstream, flag: "upstream")
        let commandText = env.value(command.upstreamCommand, flag: "upstream-command")
        let serversText = env.value(command.servers, flag: "servers")
        if serversText != nil {
            // Per-server settings live in the servers file; the timeouts and connection cap below are defaults.
            let perServer: [(String, Bool)] = [
                ("upstream", upstreamText != nil), ("upstream-command", commandText != nil),
                ("upstream-header", !env.values(command.upstreamHeaders, flag: "upstream-header").isEmpty),
                ("upstream-env", !env.values(command.upstreamEnv, flag: "upstream-env").isEmpty),
                ("upstream-isolation", command.upstreamIsolation != nil), ("upstream-max-processes", command.upstreamMaxProcesses != nil),
                ("upstream-start-timeout", command.upstreamStartTimeout != nil),
            ]
            if let (flag, _) = perServer.first(where: { $0.1 }) {
                throw usage(
                    "--\(flag) does not go with --servers: each server's settings are in the servers file (url, headers, command, args, env, and its \"toolgate\" key)")
            }
        } else if serverSelection != nil {
            throw usage("--server NAME picks a server of --servers FILE; give --servers too")
        }
        let nameSeparator = env.value(command.nameSeparator, flag: "name-separator")
        if let nameSeparator {
            guard serversText != nil else { throw usage("--name-separator names tools on the merged endpoint of --servers FILE; give --servers too") }
            if let problem = MergedNames.separatorProblem(nameSeparator) { throw usage("--name-separator: \(problem)") }
        }
        let upstreamURL: String
        switch (upstreamText, commandText) {
        case (nil, nil) where serversText != nil:
            upstreamURL = "servers: " + serversText!
        case (nil, nil):
            throw usage(
                "missing --upstream URL, --upstream-command COMMAND or --servers FILE (or TOOLGATE_UPSTREAM, TOOLGATE_UPSTREAM_COMMAND, TOOLGATE_SERVERS)")
        case (.some, .some):
            throw usage("give --upstream URL or --upstream-command COMMAND, not both")
        case (let url?, nil):
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw usage("--upstream must be an http:// or https:// URL, got \"\(url)\"")
            }
            upstreamURL = url
        case (nil, let commandLine?):
            guard !commandLine.trimmingCharacters(in: .whitespaces).isEmpty else { throw usage("--upstream-command is empty") }
            upstreamURL = "stdio: " + commandLine
        }
        if !command.upstreamEnv.isEmpty, commandText == nil {
            throw usage("--upstream-env applies to --upstream-command only")
        }
        let isolationText = env.value(command.upstreamIsolation, flag: "upstream-isolation")
        let maxProcessesText = env.value(command.upstreamMaxProcesses, flag: "upstream-max-processes")
        var isolation = StdioSessionTable.Isolation.shared
        if let isolationText {
            guard let value = StdioSessionTable.Isolation(rawValue: isolationText) else {
                throw usage("--upstream-isolation must be shared or session, got \"\(isolationText)\"")
            }
            isolation = value
        }
        var maxProcesses = 32
        if let maxProcessesText {
            guard let n = Int(maxProcessesText), n > 0, n <= 4096 else {
                throw usage("--upstream-max-processes must be an integer from 1 to 4096, got \"\(maxProcessesText)\"")
            }
            maxProcesses = n
        }
        if commandText == nil, command.upstreamIsolation != nil || command.upstreamMaxProcesses != nil {
            throw usage("--upstream-isolation and --upstream-max-processes apply to --upstream-command only")
        }
        if commandText == nil, command.upstreamStartTimeout != nil {
            throw usage("--upstream-start-timeout applies to --upstream-command only")
        }
        let startTimeout = try seconds(command.upstreamStartTimeout, "upstream-start-timeout", default: 30)
        let listen = listenerValue(\.listen, "listen") ?? "127.0.0.1:8931"
        guard let (host, port) = Self.parseListen(listen) else {
            throw usage("--listen must be HOST:PORT with a port from 0 to 65535, got \"\(listen)\"")
        }
        if let text = env.value(command.metricsListen, flag: "metrics-listen") {
            guard let (probeHost, probePort) = Self.parseListen(text) else {
                throw usage("--metrics-listen must be HOST:PORT with a port from 0 to 65535, got \"\(text)\"")
            }
            metricsListen = (probeHost, probePort)
        }
        let keyPrefix = env.value(command.keyPrefix, flag: "key-prefix") ?? "toolgate"
        if let problem = CounterKey.problem(withPrefix: keyPrefix) { throw usage("--key-prefix: \(problem)") }
        let agentID = env.value(command.agentID, flag: "agent-id") ?? ProcessInfo.processInfo.hostName
        var maxBody = 4 << 20
        if let text = env.value(command.maxBodyBytes, flag: "max-body-bytes") {
            guard let n = Int(text), n > 0 else { throw usage("--max-body-bytes must be a positive integer, got \"\(text)\"") }
            maxBody = n
        }
        var upstreamConnections = 256
        var clientConnections = 4096
        if let text = listenerValue(\.maxConnections, "max-connections") {
            guard let n = Int(text), n > 0, n <= 1 << 20 else {
                throw usage("--max-connections must be a positive integer, got \"\(text)\"")
            }
            clientConnections = n
        }
        if let text = env.value(command.upstreamMaxConnections, flag: "upstream-max-connections") {
            guard let n = Int(text), n > 0, n <= 1 << 20 else {
                throw usage("--upstream-max-connections must be a positive integer, got \"\(text)\"")
            }
            upstreamConnections = n
        }
        func seconds(_ value: String?, _ flag: String, default d: Double, readEnvironment: Bool = true) throws(Failure) -> Duration {
            guard let text = readEnvironment ? env.value(value, flag: flag) : value else { return .milliseconds(Int64(d * 1000)) }
            guard let s = Double(text), s > 0, s.isFinite else { throw usage("--\(flag) must be a positive number of seconds, got \"\(text)\"") }
            return .milliseconds(Int64(s * 1000))
        }
        upstream = CurlUpstreamTransport.Configuration(
            connectTimeout: try seconds(command.upstreamConnectTimeout, "upstream-connect-timeout", default: 5),
            headersTimeout: try seconds(command.upstreamHeadersTimeout, "upstream-headers-timeout", default: 300),
            idleTimeout: try seconds(command.upstreamIdleTimeout, "upstream-idle-timeout", default: 300),
            maxConnectionsPerHost: upstreamConnections)
        var headers: [HTTPHeader] = []
        for raw in env.values(command.upstreamHeaders, flag: "upstream-header") {
            guard let colon = raw.firstIndex(of: ":"), colon != raw.startIndex else {
                throw usage("--upstream-header must be \"Name: value\", got \"\(raw)\"")
            }
            let name = raw[..<colon].trimmingCharacters(in: .whitespaces)
            let value: String
            do {
                value = try env.expand(raw[raw.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            } catch {
                throw usage("--upstream-header: \(error)")
            }
            // A header that cannot be sent would fail every request later: refuse to start instead.
            guard HTTPField.Name(name) != nil else {
                throw usage("--upstream-header: \"\(name)\" is not a valid header name")
            }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{0}" }) else {
                throw usage("--upstream-header \(name): the value contains CR, LF or NUL (after ${ENV} expansion), which would split the header")
            }
            headers.append(HTTPHeader(name, value))
        }
        let failModeText = env.value(command.failMode, flag: "fail-mode") ?? "closed"
        guard let failMode = FailMode(rawValue: failModeText) else {
            throw usage("--fail-mode must be closed or open, got \"\(failModeText)\"")
        }
        var redisTimeout = Duration.milliseconds(100)
        if let text = env.value(command.redisTimeout, flag: "redis-timeout") {
            guard let ms = Int(text), ms > 0 else { throw usage("--redis-timeout must be a positive number of milliseconds, got \"\(text)\"") }
            redisTimeout = .milliseconds(ms)
        }
        let redisTexts = env.values(command.redis, flag: "redis")
        var seeds: [RedisURL] = []
        let sentinelPassword = env.value(command.redisSentinelPassword, flag: "redis-sentinel-password")
        if let sentinelText = redisTexts.first(where: RedisSentinelURL.isSentinel) {
            guard redisTexts.count == 1 else {
                throw usage("--redis: a redis+sentinel:// URL names every sentinel itself (host1:26379,host2:26379); give it once, alone")
            }
            do {
                redisSentinel = try RedisSentinelURL(parsing: sentinelText)
            } catch {
                throw usage("--redis: \(error.message)")
            }
            redisSentinelPassword = sentinelPassword
        } else if sentinelPassword != nil, !redisTexts.isEmpty {
            throw usage("--redis-sentinel-password goes with a redis+sentinel:// URL")
        }
        for text in redisTexts where redisSentinel == nil {
            do {
                seeds.append(try RedisURL(parsing: text))
            } catch {
                throw usage("--redis: \(error.message)")
            }
        }
        if seeds.count > 1, let withDatabase = seeds.first(where: { $0.database != 0 }) {
            throw usage(
                "--redis: a Redis Cluster has only database 0, but redis://\(withDatabase.host):\(withDatabase.port)/\(withDatabase.database) names database \(withDatabase.database)")
        }
        redisSeeds = seeds
        let tlsOptions = RedisTLSOptions(
            caFile: env.value(command.redisCAFile, flag: "redis-ca-file"),
            certificateFile: env.value(command.redisCertFile, flag: "redis-cert-file"),
            keyFile: env.value(command.redisKeyFile, flag: "redis-key-file"),
            serverName: env.value(command.redisTLSServerName, flag: "redis-tls-server-name"))
        var tlsContext: RedisTLSContext?
        if seeds.contains(where: \.usesTLS), !seeds.allSatisfy(\.usesTLS) {
            throw usage("--redis: mix of redis:// and rediss:// URLs; the nodes of one Redis are all TLS or all not")
        }
        if (tlsOptions.certificateFile == nil) != (tlsOptions.keyFile == nil) {
            throw usage("--redis-cert-file and --redis-key-file go together (mutual TLS): give both or neither")
        }
        let usesTLS = redisSentinel?.usesTLS ?? seeds.first?.usesTLS ?? false
        if !tlsOptions.isDefault, !usesTLS {
            throw usage(
                "--redis-ca-file, --redis-cert-file, --redis-key-file and --redis-tls-server-name are for TLS: "
                    + (redisTexts.isEmpty
                        ? "give --redis rediss://HOST:PORT"
                        : "use rediss:// (or rediss+sentinel://) in --redis (there is no plaintext fallback)"))
        }
        if usesTLS {
            do {
                tlsContext = try RedisTLSContext(options: tlsOptions)
            } catch {
                throw usage(error.message)
            }
        }
        if let sentinel = redisSentinel {
            var configuration = RedisClient.Configuration(url: sentinel.master)
            configuration.tls = tlsContext
            configuration.operationTimeout = redisTimeout
            redis = configuration
        } else if let first = seeds.first {
            var configuration = RedisClient.Configuration(url: first)
            configuration.tls = tlsContext
            configuration.operationTimeout = redisTimeout
            configuration.clientName = RedisClientName.forAgent(agentID)
            redis = configuration
        } else {
            redis = nil
        }
        if let text = env.value(command.redisWaitReplicas, flag: "redis-wait-replicas") {
            guard let n = Int(text), (0...64).contains(n), text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw usage("--redis-wait-replicas must be a number of replicas from 0 to 64, got \"\(text)\"")
            }
            if n > 0 {
                guard redis != nil else { throw usage("--redis-wait-replicas needs --redis: the in-memory store has no replicas") }
                redisReplicaWait = RedisDeployment.ReplicaWait(
                    replicas: n, timeout: redisTimeout, keepUnreplicatedCharges: failMode == .open)
            }
        }
        let levelText = env.value(command.logLevel, flag: "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw usage("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \"\(levelText)\"")
        }
        logLevel = level

        var grants: GrantTable?
        environment = env.environment
        if let path = listenerValue(\.grants, "grants") {
            switch PolicyFile.loadGrants(path, environment: env.environment) {
            case .success(let table): grants = table
            case .failure(let error): throw Failure(lines: error.errors.map(\.description), exitCode: 1)
            }
            grantsPath = path
        }
        switch PolicyFile.load(policyPath) {
        case .success(let loaded): policy = loaded
        case .failure(let error): throw Failure(lines: error.errors.map(\.description), exitCode: 1)
        }
        self.policyPath = policyPath
        server = ServerConfiguration(
            listenHost: host, listenPort: port, upstreamURL: upstreamURL, upstreamHeaders: headers, agentID: agentID,
            keyPrefix: keyPrefix, maxBodyBytes: maxBody,
            allowedOrigins: listenerValues(\.allowedOrigins, "allowed-origin"),
            allowedHosts: listenerValues(\.allowedHosts, "allowed-host"), grants: grants, failMode: failMode,
            clientIdleTimeout: try seconds(listener?.clientIdleTimeout, "client-idle-timeout", default: 60, readEnvironment: listener != nil))
        server.maxConnections = clientConnections
        if let nameSeparator { server.nameSeparator = nameSeparator }
        if let path = listenerValue(\.adminTokenFile, "admin-token-file") {
            server.adminToken = try Self.readAdminToken(path)
        }
        if let text = listenerValue(\.adminListen, "admin-listen") {
            guard let (adminHost, adminPort) = Self.parseListen(text) else {
                throw usage("--admin-listen must be HOST:PORT with a port from 0 to 65535, got \"\(text)\"")
            }
            guard server.adminToken != nil else {
                throw usage("--admin-listen serves /admin, which needs --admin-token-file (or TOOLGATE_ADMIN_TOKEN_FILE)")
            }
            adminListen = (adminHost, adminPort)
        }
        // toolgate's environment, less its own secrets: grant tokens read from the environment, and every
        // TOOLGATE_* setting (a Redis URL may hold a password). Then --upstream-env, or a server's `env`.
        let secrets = Set(grants?.grants.compactMap(\.tokenVariable) ?? [])
        let inheritedEnvironment = env.environment.filter { !$0.key.hasPrefix("TOOLGATE_") && !secrets.contains($0.key) }
        if let commandText {
            var childEnvironment = inheritedEnvironment
            for raw in env.values(command.upstreamEnv, flag: "upstream-env") {
                guard let equals = raw.firstIndex(of: "="), equals != raw.startIndex else {
                    throw usage("--upstream-env must be NAME=VALUE, got \"\(raw)\"")
                }
                do {
                    childEnvironment[String(raw[..<equals])] = try env.expand(String(raw[raw.index(after: equals)...]))
                } catch {
                    throw usage("--upstream-env: \(error)")
                }
            }
            upstreamCommand = StdioUpstreamTransport.Configuration(
                command: commandText, environment: childEnvironment, initializeTimeout: startTimeout,
                maximumLineBytes: Self.maximumStdioLine, headersTimeout: upstream.headersTimeout, idleTimeout: upstream.idleTimeout,
                isolation: isolation, maximumProcesses: maxProcesses)
        }
        if command.shadow {
            server.shadow = true
        } else if let text = env.value(nil, flag: "shadow") {
            guard let on = ["true": true, "1": true, "false": false, "0": false][text.lowercased()] else {
                throw usage("TOOLGATE_SHADOW must be true, false, 1 or 0, got \"\(text)\"")
            }
            server.shadow = on
        }
        server.drainTimeout = try seconds(command.drainTimeout, "drain-timeout", default: 30)
        auditLogPath = env.value(command.auditLog, flag: "audit-log")
        if let path = auditLogPath, path.isEmpty { throw usage("--audit-log needs a file path, or - for standard output") }
        // Last: each server's configuration is a copy of the listener's, which is complete only now.
        if let serversText {
            let file: ServersFile
            switch PolicyFile.loadServers(serversText, environment: env.environment, expandingOnly: serverSelection) {
            case .success(let loaded): file = loaded
            case .failure(let error): throw Failure(lines: error.errors.map(\.description), exitCode: 1)
            }
            var chosen = file.servers
            if let serverSelection {
                guard let server = file.server(named: serverSelection) else {
                    let names = file.servers.map(\.name)
                    let hint = NameSuggestion.closest(to: serverSelection, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
                    throw usage("--server: no server \"\(serverSelection)\" in \(serversText)\(hint); it has: \(names.joined(separator: ", "))")
                }
                chosen = [server]
            }
            namedServers = chosen.map {
                ServerLaunch(
                    $0, listener: server, defaults: upstream, environment: inheritedEnvironment, maximumLineBytes: Self.maximumStdioLine)
            }
            serversPath = serversText
            serversFile = file
            self.inheritedEnvironment = inheritedEnvironment
            if let unknown = policy.sections.keys.sorted().first(where: { file.server(named: $0) == nil }) {
                let names = file.servers.map(\.name)
                let hint = NameSuggestion.closest(to: unknown, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
                throw Failure(
                    lines: ["\(policyPath): servers.\(unknown): no server \"\(unknown)\" in \(serversText)\(hint) (servers: \(names.joined(separator: ", ")))"],
                    exitCode: 1)
            }
        } else if !policy.sections.isEmpty {
            throw Failure(
                lines: [
                    "\(policyPath): servers: the policy has sections for named servers (\(policy.sections.keys.sorted().joined(separator: ", "))), which need --servers FILE"
                ], exitCode: 1)
        }
    }

    /// The longest line a stdio upstream may write: a JSON answer toolgate reads whole anyway.
    static let maximumStdioLine = 32 << 20

    /// The first line of the file, trimmed; at least 16 characters, since it guards every approval.
    static func readAdminToken(_ path: String) throws(Failure) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(lines: ["\(path): cannot read the admin token file (--admin-token-file)"], exitCode: 64)
        }
        let token = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map { $0.trimmingWhitespace } ?? ""
        guard token.utf8.count >= 16 else {
            throw Failure(
                lines: ["\(path): the admin token must be at least 16 characters (for example: openssl rand -hex 32 > \(path))"],
                exitCode: 64)
        }
        return token
    }

    /// `127.0.0.1:8931`, `[::1]:0`, `0.0.0.0:8080`.
    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }
}
