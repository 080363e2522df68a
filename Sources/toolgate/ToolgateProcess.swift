import Logging
import ServiceLifecycle
import ToolgateCore
import ToolgateRedis
import ToolgateServer
import ToolgateUpstream

/// Wires the adapters together into services that run until SIGTERM/SIGINT.
enum ToolgateProcess {
    static func serviceGroup(
        _ settings: ServeSettings, logger: Logger, onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> ServiceGroup {
        let metrics = ToolgateMetrics(version: ToolgateVersion.current)
        metrics.policyInForce(sha256: settings.policy.sha256)
        let policy = PolicyState(policy: settings.policy, keyPrefix: settings.server.keyPrefix, grants: settings.server.grants)
        let readiness = ToolgateServer.Readiness()
        let upstream = CurlUpstreamTransport(configuration: settings.upstream)
        let store: any LimitStore
        let storeStatus: any StoreStatus
        let approvals: any ApprovalStore
        let roundStates: any RoundStateStore
        var storeServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let redis = settings.redis {
            let deployment = RedisDeployment(
                seeds: settings.redisSeeds.isEmpty ? [redis.url] : settings.redisSeeds, configuration: redis, logger: logger)
            let status = RedisStoreStatus(deployment: deployment, logger: logger)
            store = RedisLimitStore(deployment: deployment, keyPrefix: settings.server.keyPrefix, logger: logger)
            approvals = RedisApprovalStore(deployment: deployment, keyPrefix: settings.server.keyPrefix, logger: logger)
            roundStates = RedisRoundStateStore(deployment: deployment, keyPrefix: settings.server.keyPrefix)
            storeStatus = status
            storeServices.append(.init(service: status, successTerminationBehavior: .ignore))
            logger.info(
                "limit store: redis",
                metadata: ["redis": "\(deployment.description)", "database": "\(redis.url.database)"])
        } else {
            store = InMemoryLimitStore(clock: SystemWallClock())
            storeStatus = MemoryStoreStatus()
            approvals = InMemoryApprovalStore(clock: SystemWallClock())
            roundStates = InMemoryRoundStateStore(clock: SystemWallClock())
        }
        let observation = UpstreamObservation()
        let app = ToolgateServer.makeApplication(
            configuration: settings.server, policy: policy, store: store, storeStatus: storeStatus, upstream: upstream,
            metrics: metrics, readiness: readiness, logger: logger, approvals: approvals, observation: observation,
            roundStates: roundStates, onListening: onListening)
        var probeServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let (host, port) = settings.metricsListen {
            probeServices.append(
                .init(
                    service: ToolgateServer.makeProbesApplication(
                        host: host, port: port, configuration: settings.server, policy: policy, storeStatus: storeStatus,
                        metrics: metrics, readiness: readiness, observation: observation, logger: logger)))
        }
        if settings.server.grants == nil, !RequestOriginGuard.isLoopback(listenHost: settings.server.listenHost) {
            logger.warning(
                "/mcp listens beyond loopback without --grants: anyone who can reach it is grant \"default\"; give a grants file (toolgate hash-token makes its digests)",
                metadata: ["listen": "\(settings.server.listenHost):\(settings.server.listenPort)"])
        }
        let reloader = PolicyReloader(
            path: settings.policyPath, state: policy, metrics: metrics, logger: logger, grantsPath: settings.grantsPath,
            environment: settings.environment)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: app),
                    .init(service: reloader, successTerminationBehavior: .ignore),
                    .init(service: DrainWatcher(readiness: readiness), successTerminationBehavior: .ignore),
                ] + storeServices + probeServices,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info(
            "policy loaded",
            metadata: ["path": "\(settings.policyPath)", "sha256": "\(settings.policy.sha256)", "agent": "\(settings.server.agentID)"])
        return group
    }
}
