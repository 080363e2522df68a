import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import ToolgateCore

/// Builds the HTTP application: `/mcp`, `/metrics`, `/healthz`, `/readyz`, and `/admin` unless `--admin-listen` gives it
/// a listener of its own.
public enum ToolgateServer {
    /// Readiness that the HTTP layer reports; set to draining when graceful shutdown begins.
    public final class Readiness: Sendable {
        private let draining = Atomic(false)
        public init() {}
        public var isDraining: Bool { draining.load(ordering: .relaxed) }
        public func startDraining() { draining.store(true, ordering: .relaxed) }
    }

    /// One unnamed upstream (`--upstream` / `--upstream-command`) at `/mcp`.
    public static func makeApplication(
        configuration: ServerConfiguration, policy: PolicyState, store: any LimitStore, storeStatus: any StoreStatus,
        upstream: any UpstreamTransport, metrics: ToolgateMetrics, readiness: Readiness, logger: Logger,
        approvals: (any ApprovalStore)? = nil, observation: UpstreamObservation = UpstreamObservation(),
        roundStates: any RoundStateStore = InMemoryRoundStateStore(clock: SystemWallClock()), auditLog: AuditLog? = nil,
        inflight: InflightRequests? = nil, adminListener: AdminListener? = nil, adminClock: any WallClock = SystemWallClock(),
        onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> some ApplicationProtocol {
        makeApplication(
            configuration: configuration,
            servers: [UpstreamServer(configuration: configuration, upstream: upstream, observation: observation)], policy: policy,
            store: store, storeStatus: storeStatus, metrics: metrics, readiness: readiness, logger: logger, approvals: approvals,
            roundStates: roundStates, auditLog: auditLog, inflight: inflight, adminListener: adminListener, adminClock: adminClock,
            onListening: onListening)
    }

    /// Every server of a servers file (DESIGN.md section 10), each at `/mcp/NAME`, on one listener with one policy,
    /// one store, one approvals page and one `/metrics`. `configuration` is the listener's; each server's own
    /// (upstream URL, headers, name) is in its `UpstreamServer`.
    public static func makeApplication(
        configuration: ServerConfiguration, servers: [UpstreamServer], policy: PolicyState, store: any LimitStore,
        storeStatus: any StoreStatus, metrics: ToolgateMetrics, readiness: Readiness, logger: Logger,
        approvals: (any ApprovalStore)? = nil,
        roundStates: any RoundStateStore = InMemoryRoundStateStore(clock: SystemWallClock()), auditLog: AuditLog? = nil,
        inflight: InflightRequests? = nil, adminListener: AdminListener? = nil, adminClock: any WallClock = SystemWallClock(),
        onRoutes: (ServerRoutes) -> Void = { _ in },
        onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> some ApplicationProtocol {
        let gate = ApprovalGate(
            store: approvals ?? InMemoryApprovalStore(clock: SystemWallClock()), metrics: metrics, logger: logger)
        let inflight = inflight ?? InflightRequests(metrics: metrics)
        let routes = ServerRoutes(
            servers: servers,
            originGuard: RequestOriginGuard(
                boundToLoopback: RequestOriginGuard.isLoopback(listenHost: configuration.listenHost),
                allowedHosts: configuration.allowedHosts, allowedOrigins: configuration.allowedOrigins),
            merged: MergedEndpoint(separator: configuration.nameSeparator, version: metrics.version, logger: logger)
        ) { server in
            MCPProxy(
                configuration: server.configuration, policy: policy, store: store, upstream: server.upstream, metrics: metrics,
                logger: logger, approvals: gate, upstreamObservation: server.observation, roundStates: roundStates,
                auditLog: auditLog, readiness: readiness, inflight: inflight)
        }
        onRoutes(routes)
        let router = Router(context: ProxyRequestContext.self)
        router.post("/mcp") { request, context in await routes.handleRoot(request, agent: context.client) }
        router.get("/mcp") { request, context in await routes.handleRoot(request, agent: context.client) }
        router.delete("/mcp") { request, context in await routes.handleRoot(request, agent: context.client) }
        for method in [HTTPRequest.Method.post, .get, .delete] {
            router.on("/mcp/:server", method: method) { request, context in
                await routes.handle(request, server: context.parameters.get("server") ?? "", agent: context.client)
            }
        }
        for method in [HTTPRequest.Method.put, .patch, .head, .options] {
            for path in ["/mcp", "/mcp/:server"] {
                router.on(RouterPath(stringLiteral: path), method: method) { _, _ in
                    MCPProxy.httpError(.methodNotAllowed, .invalidRequest, "use POST, GET or DELETE on /mcp")
                }
            }
        }
        if let token = configuration.adminToken {
            let admin = AdminAPI(
                access: AdminAccess(token: token, sessions: AdminSessions(clock: adminClock)), gate: gate, policy: policy, logger: logger)
            if let adminListener {
                // `--admin-listen`: /admin is served there, and not here.
                adminListener.install(admin, configuration: configuration)
            } else {
                AdminRoutes(api: admin, listenHost: configuration.listenHost, configuration: configuration).add(to: router)
            }
        }
        let probes = ProbeEndpoints(
            configuration: configuration, policy: policy, storeStatus: storeStatus, metrics: metrics, readiness: readiness,
            servers: { routes.servers }, listenHost: configuration.listenHost)
        probes.add(to: router)
        let shownUpstreams = servers.map { ($0.name.map { $0 + "=" } ?? "") + $0.configuration.upstreamShownURL }
        return Application(
            router: router,
            server: guardedHTTP1(configuration),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.listenHost, port: configuration.listenPort), serverName: nil,
                availableConnectionsDelegate: ClientConnectionLimit(maximum: configuration.maxConnections, logger: logger)),
            onServerRunning: { channel in
                await ClientConnectionLimit.acceptOnePerRead(channel, logger: logger)
                let port = channel.localAddress?.port ?? configuration.listenPort
                logger.info(
                    "toolgate listening",
                    metadata: [
                        "address": "\(configuration.listenHost):\(port)",
                        (shownUpstreams.count == 1 && servers[0].name == nil ? "upstream" : "servers"): "\(shownUpstreams.joined(separator: " "))",
                    ])
                await onListening(configuration.listenHost, port)
            },
            logger: logger)
    }

    /// `--metrics-listen`: `/metrics`, `/healthz` and `/readyz` on a listener of their own (a pod's probes and
    /// scrapes), while `/mcp` stays where it is, loopback for instance.
    public static func makeProbesApplication(
        host: String, port: Int, configuration: ServerConfiguration, policy: PolicyState, storeStatus: any StoreStatus,
        metrics: ToolgateMetrics, readiness: Readiness, servers: @escaping @Sendable () -> [UpstreamServer], logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        ProbeEndpoints(
            configuration: configuration, policy: policy, storeStatus: storeStatus, metrics: metrics, readiness: readiness,
            servers: servers, listenHost: host
        ).add(to: router)
        return Application(
            router: router,
            server: guardedHTTP1(configuration),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: ClientConnectionLimit(maximum: ConnectionBudget.probeConnections, logger: logger)),
            onServerRunning: { channel in
                await ClientConnectionLimit.acceptOnePerRead(channel, logger: logger)
                logger.info("probes and metrics listening", metadata: ["address": "\(host):\(channel.localAddress?.port ?? port)"])
            },
            logger: logger)
    }
}

extension ToolgateServer {
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let parts = duration.components
        return .nanoseconds(parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
    }
}

extension ToolgateServer {
    /// HTTP/1.1 with the guards every listener has: bounded request heads, a request that must arrive in full and a
    /// connection that may stay idle for at most `--client-idle-timeout`.
    static func guardedHTTP1(_ configuration: ServerConfiguration) -> HTTPServerBuilder {
        guardedHTTP1(idleTimeout: configuration.clientIdleTimeout)
    }

    static func guardedHTTP1(idleTimeout idle: Duration) -> HTTPServerBuilder {
        let idleTimeout = timeAmount(idle)
        return .http1(
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [HTTP1RequestHeadGuardInstaller(requestDeadline: idleTimeout)], idleTimeout: idleTimeout))
    }
}
