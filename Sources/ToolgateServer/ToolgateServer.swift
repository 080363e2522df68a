import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import ToolgateCore

/// Builds the HTTP application: `/mcp`, `/metrics`, `/healthz`, `/readyz`.
public enum ToolgateServer {
    /// Readiness that the HTTP layer reports; set to draining when graceful shutdown begins.
    public final class Readiness: Sendable {
        private let draining = Atomic(false)
        public init() {}
        public var isDraining: Bool { draining.load(ordering: .relaxed) }
        public func startDraining() { draining.store(true, ordering: .relaxed) }
    }

    public static func makeApplication(
        configuration: ServerConfiguration, policy: PolicyState, store: any LimitStore, storeStatus: any StoreStatus,
        upstream: any UpstreamTransport, metrics: ToolgateMetrics, readiness: Readiness, logger: Logger,
        approvals: (any ApprovalStore)? = nil, onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> some ApplicationProtocol {
        let gate = ApprovalGate(
            store: approvals ?? InMemoryApprovalStore(clock: SystemWallClock()), metrics: metrics, logger: logger)
        let observation = UpstreamObservation()
        let proxy = MCPProxy(
            configuration: configuration, policy: policy, store: store, upstream: upstream, metrics: metrics, logger: logger,
            approvals: gate, upstreamObservation: observation)
        let router = Router(context: ProxyRequestContext.self)
        router.post("/mcp") { request, context in await proxy.handle(request, agent: context.client) }
        router.get("/mcp") { request, context in await proxy.handle(request, agent: context.client) }
        router.delete("/mcp") { request, context in await proxy.handle(request, agent: context.client) }
        for method in [HTTPRequest.Method.put, .patch, .head, .options] {
            router.on("/mcp", method: method) { _, _ in
                MCPProxy.httpError(.methodNotAllowed, .invalidRequest, "use POST, GET or DELETE on /mcp")
            }
        }
        if let token = configuration.adminToken {
            let admin = AdminAPI(access: AdminAccess(token: token), gate: gate, logger: logger)
            let page = AdminPageRoutes(api: admin)
            // The page's own refreshes use its cookie; a GET changes nothing.
            router.get("/admin/approvals") { request, _ in await admin.list(request, cookieAllowed: true) }
            router.get("/admin/") { request, _ in await page.page(request) }
            router.post("/admin/login") { request, _ in await page.login(request) }
            router.post("/admin/logout") { request, _ in await page.logout(request) }
            router.post("/admin/decide") { request, _ in await page.decide(request) }
            router.post("/admin/approvals/:id") { request, context in
                let raw = context.parameters.get("id") ?? ""
                return await admin.decide(request, id: raw.removingPercentEncoding ?? raw)
            }
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            let connected = storeStatus.isConnected
            let status: String
            if readiness.isDraining {
                status = "not_ready"
            } else if !connected {
                status = configuration.failMode == .open ? "degraded" : "not_ready"
            } else {
                status = "ready"
            }
            var store: JSONObject = [
                "kind": .string(storeStatus.kind), "connected": .bool(connected),
                "warnings": .array(storeStatus.warnings.map { .string($0) }),
            ]
            if let cluster = storeStatus.cluster {
                store["cluster"] = [
                    "nodes": .number(JSONNumber(cluster.nodes)), "masters": .number(JSONNumber(cluster.masters)),
                    "slotsCovered": .number(JSONNumber(cluster.slotsCovered)),
                ]
            }
            var upstreamReport: JSONObject = ["url": .string(configuration.upstreamURL)]
            if let last = observation.latest {
                upstreamReport["lastStatus"] = .string(last.status)
                upstreamReport["lastAnswerWasMCP"] = .bool(last.speaksMCP)
                upstreamReport["lastAt"] = .string(AdminAPI.timestamp(Int64(last.at.timeIntervalSince1970 * 1_000)))
            }
            let body: JSONValue = [
                "status": .string(status),
                "policy": ["sha256": .string(policy.snapshot.policy.sha256)],
                "store": .object(store),
                "upstream": .object(upstreamReport),
            ]
            return MCPProxy.jsonResponse(status: status == "not_ready" ? .serviceUnavailable : .ok, body)
        }
        let idle = configuration.clientIdleTimeout.components
        return Application(
            router: router,
            server: .http1(
                configuration: HTTP1Channel.Configuration(
                    additionalChannelHandlers: [HTTP1RequestHeadGuardInstaller()],
                    idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000))),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.listenHost, port: configuration.listenPort), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.listenPort
                logger.info(
                    "toolgate listening",
                    metadata: ["address": "\(configuration.listenHost):\(port)", "upstream": "\(configuration.upstreamURL)"])
                await onListening(configuration.listenHost, port)
            },
            logger: logger)
    }
}

/// Marks the server as draining (`/readyz` 503) as soon as graceful shutdown starts.
public struct DrainWatcher: Service {
    let readiness: ToolgateServer.Readiness

    public init(readiness: ToolgateServer.Readiness) { self.readiness = readiness }

    public func run() async throws {
        try? await gracefulShutdown()
        readiness.startDraining()
    }
}
