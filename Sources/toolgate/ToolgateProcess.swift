import ArgumentParser
import Logging
import ServiceLifecycle
import ToolgateCore
import ToolgateRedis
import ToolgateServer
import ToolgateUpstream

/// Wires the adapters together into services that run until SIGTERM/SIGINT.
enum ToolgateProcess {
    static func serviceGroup(
        _ settings: ServeSettings, stdio: Bool = false, auditSink: (any AuditSink)? = nil,
        stdioUpstreams: [String: StdioUpstreamTransport] = [:], observations: [String: UpstreamObservation] = [:],
        metrics: ToolgateMetrics = ToolgateMetrics(version: ToolgateVersion.current), logger: Logger,
        onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> ServiceGroup {
        metrics.policyInForce(sha256: settings.policy.sha256)
        let policy = PolicyState(policy: settings.policy, keyPrefix: settings.server.keyPrefix, grants: settings.server.grants)
        let readiness = ToolgateServer.Readiness()
        // Every server: the one unnamed upstream (key ""), or each of the servers file, an HTTP server with a
        // connection pool of its own.
        let servers: [UpstreamServer]
        var serversReloader: ServersReloader?
        if settings.namedServers.isEmpty {
            servers = [
                UpstreamServer(
                    configuration: settings.server,
                    upstream: stdioUpstreams[""] ?? CurlUpstreamTransport(configuration: settings.upstream),
                    observation: observations[""] ?? UpstreamObservation())
            ]
        } else {
            var entries: [ServersReloader.Entry] = []
            for launch in settings.namedServers {
                let curl = stdioUpstreams[launch.name] == nil ? CurlUpstreamTransport(configuration: launch.http ?? settings.upstream) : nil
                let server = UpstreamServer(
                    configuration: launch.configuration, upstream: stdioUpstreams[launch.name] ?? curl!,
                    observation: observations[launch.name] ?? UpstreamObservation())
                entries.append(
                    ServersReloader.Entry(definition: launch.definition, server: server, curl: curl, stdio: stdioUpstreams[launch.name]))
            }
            servers = entries.map(\.server)
            if !stdio, let path = settings.serversPath, let file = settings.serversFile {
                serversReloader = ServersReloader(
                    path: path, file: file, entries: entries, environment: settings.environment, listener: settings.server,
                    defaults: settings.upstream, inheritedEnvironment: settings.inheritedEnvironment, metrics: metrics, logger: logger)
            }
        }
        let store: any LimitStore
        let storeStatus: any StoreStatus
        let approvals: any ApprovalStore
        let roundStates: any RoundStateStore
        var storeServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let redis = settings.redis {
            let deployment =
                settings.redisSentinel.map {
                    RedisDeployment(
                        sentinel: $0, configuration: redis, sentinelPassword: settings.redisSentinelPassword, logger: logger,
                        replicaWait: settings.redisReplicaWait)
                }
                ?? RedisDeployment(
                    seeds: settings.redisSeeds.isEmpty ? [redis.url] : settings.redisSeeds, configuration: redis, logger: logger,
                    replicaWait: settings.redisReplicaWait)
            let status = RedisStoreStatus(deployment: deployment, logger: logger)
            store = RedisLimitStore(deployment: deployment, keyPrefix: settings.server.keyPrefix, logger: logger)
            approvals = RedisApprovalStore(deployment: deployment, keyPrefix: settings.server.keyPrefix, logger: logger)
            roundStates = RedisRoundStateStore(deployment: deployment, keyPrefix: settings.server.keyPrefix)
            storeStatus = status
            storeServices.append(.init(service: status, successTerminationBehavior: .ignore))
            logger.info(
                "limit store: redis",
                metadata: [
                    "redis": "\(deployment.description)", "database": "\(redis.url.database)",
                    "waitReplicas": "\(settings.redisReplicaWait?.replicas ?? 0)",
                ])
        } else {
            store = InMemoryLimitStore(clock: SystemWallClock())
            storeStatus = MemoryStoreStatus()
            approvals = InMemoryApprovalStore(clock: SystemWallClock())
            roundStates = InMemoryRoundStateStore(clock: SystemWallClock())
        }
        let auditLog = auditSink.map { AuditLog(sink: $0, metrics: metrics, logger: logger) }
        let inflight = InflightRequests(metrics: metrics)
        var probeServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let adminListener = stdio ? nil : settings.adminListen.map { AdminListener(host: $0.host, port: $0.port) }
        // The front: the HTTP listener of `serve`, or `stdio`'s one client on stdin/stdout (the group ends with it).
        let front: ServiceGroupConfiguration.ServiceConfiguration
        if stdio {
            front = .init(
                service: StdioFront(
                    configuration: settings.server, servers: servers, policy: policy, store: store, metrics: metrics,
                    readiness: readiness, logger: logger, approvals: approvals, roundStates: roundStates, auditLog: auditLog,
                    inflight: inflight),
                successTerminationBehavior: .gracefullyShutdownGroup)
        } else {
            front = .init(
                service: ToolgateServer.makeApplication(
                    configuration: settings.server, servers: servers, policy: policy, store: store, storeStatus: storeStatus,
                    metrics: metrics, readiness: readiness, logger: logger, approvals: approvals, roundStates: roundStates,
                    auditLog: auditLog, inflight: inflight, adminListener: adminListener,
                    onRoutes: { [serversReloader] routes in serversReloader?.attach(routes) }, onListening: onListening))
        }
        if let adminListener { probeServices.append(.init(service: adminListener)) }
        if let (host, port) = settings.metricsListen {
            probeServices.append(
                .init(
                    service: ToolgateServer.makeProbesApplication(
                        host: host, port: port, configuration: settings.server, policy: policy, storeStatus: storeStatus,
                        metrics: metrics, readiness: readiness,
                        servers: { [serversReloader] in serversReloader?.routesServers ?? servers }, logger: logger)))
        }
        if !stdio, settings.server.grants == nil, !RequestOriginGuard.isLoopback(listenHost: settings.server.listenHost) {
            logger.warning(
                "/mcp listens beyond loopback without --grants: anyone who can reach it is grant \"default\"; give a grants file (toolgate hash-token makes its digests)",
                metadata: ["listen": "\(settings.server.listenHost):\(settings.server.listenPort)"])
        }
        let reloader = PolicyReloader(
            path: settings.policyPath, state: policy, metrics: metrics, logger: logger, grantsPath: settings.grantsPath,
            environment: settings.environment, auditLog: auditLog, servers: serversReloader,
            fixedServers: stdio ? settings.serversPath.map { ($0, settings.serversFile?.servers.map(\.name) ?? []) } : nil)
        if settings.server.shadow {
            logger.warning("shadow mode (--shadow): every call is evaluated and counted, none is denied")
        }
        // Graceful shutdown stops services last to first: the drain comes first, while every listener still serves
        // (and answers 503); the audit log is closed last, after the last call's line.
        var configuration = ServiceGroupConfiguration(
            services: (auditLog.map { [.init(service: AuditLogCloser(log: $0), successTerminationBehavior: .ignore)] } ?? [])
                + stdioUpstreams.values.map { .init(service: StdioUpstreamService(transport: $0), successTerminationBehavior: .ignore) }
                + [
                    front,
                    .init(service: reloader, successTerminationBehavior: .ignore),
                    .init(service: PolicyFileWatcher(reloader: reloader, logger: logger), successTerminationBehavior: .ignore),
                ] + (serversReloader.map { [.init(service: $0, successTerminationBehavior: .ignore)] } ?? []) + storeServices
                + probeServices
                + [
                    .init(
                        // One stdio client's work is exactly what is in flight (no agent's next request can come
                        // over another connection): its drain ends as soon as nothing is.
                        service: DrainGate(
                            readiness: readiness, inflight: inflight, timeout: settings.server.drainTimeout, logger: logger,
                            quiet: stdio ? .zero : .seconds(1)),
                        successTerminationBehavior: .ignore)
                ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A stuck connection cannot hold the process past the drain: it is cancelled a little later.
        configuration.maximumGracefulShutdownDuration = settings.server.drainTimeout + .seconds(10)
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        logger.info(
            "policy loaded",
            metadata: ["path": "\(settings.policyPath)", "sha256": "\(settings.policy.sha256)", "agent": "\(settings.server.agentID)"])
        return group
    }
}

/// Writes out what the audit log still holds when the process stops.
struct AuditLogCloser: Service {
    let log: AuditLog

    func run() async throws {
        try? await gracefulShutdown()
        log.close()
    }
}

extension ToolgateProcess {
    /// The stdio upstream of `--upstream-command`, started and answering `initialize`, its events logged (its stderr
    /// line by line, tagged) and shown in `/readyz`. Throws, for the user, when it never answers.
    static func startStdioUpstream(
        _ configuration: StdioUpstreamTransport.Configuration, server: String? = nil, observation: UpstreamObservation,
        metrics: ToolgateMetrics, logger: Logger
    ) async throws(StdioUpstreamFailure) -> StdioUpstreamTransport {
        var serverLogger = logger
        if let server { serverLogger[metadataKey: "server"] = "\(server)" }
        let logger = serverLogger
        let notJSONLog = LogThrottle()
        let refusalLog = LogThrottle()
        let transport = StdioUpstreamTransport(configuration: configuration) { event in
            switch event {
            case .started(let pid):
                logger.info("upstream command started", metadata: ["pid": "\(pid)", "command": "\(configuration.command)"])
            case .ready(let name):
                observation.recovered()
                logger.info("upstream command ready", metadata: ["server": "\(name)"])
            case .exited(let description, let restartIn):
                if let restartIn {
                    observation.setProblem("the upstream command \(description); restarting in \(restartIn)")
                    logger.error("upstream command \(description); restarting", metadata: ["in": "\(restartIn)"])
                } else {
                    logger.info("upstream command stopped", metadata: ["status": "\(description)"])
                }
            case .launchFailed(let description, let restartIn):
                observation.setProblem("\(description); restarting in \(restartIn)")
                logger.error("upstream command failed to start; restarting", metadata: ["error": "\(description)", "in": "\(restartIn)"])
            case .stderr(let line):
                logger.info("\(line)", metadata: ["source": "upstream-stderr"])
            case .refusedResponse(let reason):
                metrics.stdioResponseRefused(reason, server: server)
                if let suppressed = refusalLog.admit() {
                    logger.warning(
                        "refused a client's answer to a request of the upstream command's: it was not that client's to answer",
                        metadata: ["reason": "\(reason.rawValue)", "suppressedSinceLastLine": "\(suppressed)"])
                }
            case .processCapReached(let maximum):
                if let suppressed = refusalLog.admit() {
                    logger.warning(
                        "refused a new session: the upstream command processes are at --upstream-max-processes",
                        metadata: ["maximum": "\(maximum)", "suppressedSinceLastLine": "\(suppressed)"])
                }
            case .notJSON(let prefix):
                if let suppressed = notJSONLog.admit() {
                    logger.warning(
                        "upstream command wrote a line that is not JSON; skipped",
                        metadata: ["line": "\(prefix)", "suppressedSinceLastLine": "\(suppressed)"])
                }
            }
        }
        observation.setProblem("the upstream command is starting")
        try await transport.start()
        return transport
    }
}

/// Keeps the stdio upstream running for the process's life; stops it (stdin closed, SIGTERM, SIGKILL) last.
struct StdioUpstreamService: Service {
    let transport: StdioUpstreamTransport

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await transport.superviseUntilStopped() }
            try? await gracefulShutdown()
            await transport.stop()
        }
    }
}

extension ToolgateProcess {
    /// What `serve` and `stdio` do once their flags are checked: logging to stderr, the audit sink opened, a stdio
    /// upstream started, then the services until SIGTERM/SIGINT (or, for `stdio`, until stdin closes). Every
    /// failure is printed in terms of the command's flags.
    static func run(_ settings: ServeSettings, command: String) async throws {
        var settings = settings
        let logLevel = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = EscapingLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = logLevel
            return handler
        }
        var auditSink: FileAuditSink?
        if let path = settings.auditLogPath {
            do {
                auditSink = try FileAuditSink(path: path)
            } catch {
                printError("toolgate \(command): \(error)")
                throw ExitCode(64)
            }
        }
        let logger = Logger(label: "toolgate")
        // Descriptors bound how many connections can be held: take all the process may have, then fit the caps.
        // Several HTTP servers each have a pool of their own: the budget holds them all, and a lowered budget is
        // shared out in proportion to their caps.
        let upstreamCaps = settings.namedServers.isEmpty
            ? settings.upstream.maxConnectionsPerHost : settings.namedServers.reduce(0) { $0 + ($1.http?.maxConnectionsPerHost ?? 0) }
        let budget = ConnectionBudget.fit(
            clients: settings.server.maxConnections, upstream: upstreamCaps, descriptorLimit: DescriptorLimit.raiseToHardLimit())
        if let warning = budget.warning { logger.warning("\(warning)") }
        settings.server.maxConnections = budget.clientConnections
        settings.upstream.maxConnectionsPerHost = budget.upstreamConnections
        for index in settings.namedServers.indices {
            settings.namedServers[index].configuration.maxConnections = budget.clientConnections
            if let cap = settings.namedServers[index].http?.maxConnectionsPerHost, budget.upstreamConnections < upstreamCaps {
                settings.namedServers[index].http?.maxConnectionsPerHost = max(1, cap * budget.upstreamConnections / upstreamCaps)
            }
        }
        let metrics = ToolgateMetrics(version: ToolgateVersion.current)
        // The stdio upstreams start before anything listens: a server that never answers is the user's to hear of
        // at once, named, with the flag or key that bounds its start.
        var toStart: [(name: String, configuration: StdioUpstreamTransport.Configuration)] = []
        if let upstreamCommand = settings.upstreamCommand { toStart.append(("", upstreamCommand)) }
        for launch in settings.namedServers {
            if let stdio = launch.stdio { toStart.append((launch.name, stdio)) }
        }
        var observations: [String: UpstreamObservation] = [:]
        for launch in settings.namedServers { observations[launch.name] = UpstreamObservation() }
        observations[""] = UpstreamObservation()
        var stdioUpstreams: [String: StdioUpstreamTransport] = [:]
        do {
            try await withThrowingTaskGroup(of: (String, StdioUpstreamTransport).self) { group in
                for (name, configuration) in toStart {
                    let observation = observations[name]!
                    group.addTask {
                        do throws(StdioUpstreamFailure) {
                            let transport = try await startStdioUpstream(
                                configuration, server: name.isEmpty ? nil : name, observation: observation, metrics: metrics,
                                logger: logger)
                            return (name, transport)
                        } catch {
                            throw StdioServerStartFailure(server: name, failure: error)
                        }
                    }
                }
                for try await (name, transport) in group { stdioUpstreams[name] = transport }
            }
        } catch let failure as StdioServerStartFailure {
            for transport in stdioUpstreams.values { await transport.stop() }
            printError("toolgate \(command): " + (failure.server.isEmpty ? "" : "server \"\(failure.server)\" (\(settings.serversPath ?? "")): ") + "\(failure.failure)")
            throw ExitCode.failure
        }
        do {
            try await serviceGroup(
                settings, stdio: command == "stdio", auditSink: auditSink, stdioUpstreams: stdioUpstreams, observations: observations,
                metrics: metrics, logger: logger
            ).run()
        } catch {
            printError(ServeCommand.explain(error, settings: settings))
            throw ExitCode.failure
        }
    }
}

/// A stdio server that did not start, with its name in the servers file ("" for `--upstream-command`).
struct StdioServerStartFailure: Error {
    let server: String
    let failure: StdioUpstreamFailure
}
