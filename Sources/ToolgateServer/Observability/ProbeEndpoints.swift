import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ToolgateCore

/// `/metrics`, `/healthz` and `/readyz` (DESIGN.md section 3), the same on the `/mcp` listener and on
/// `--metrics-listen`'s.
struct ProbeEndpoints: Sendable {
    let configuration: ServerConfiguration
    let policy: PolicyState
    let storeStatus: any StoreStatus
    let metrics: ToolgateMetrics
    let readiness: ToolgateServer.Readiness
    /// The servers in force (a reloaded servers file changes them).
    let servers: @Sendable () -> [UpstreamServer]
    /// DNS-rebinding protection for the probes: on loopback only a loopback `Host`, and no foreign `Origin`. Names
    /// given with `--allowed-host` are not required here: scrapers and kubelet probes address a pod by its IP.
    let originGuard: RequestOriginGuard

    init(
        configuration: ServerConfiguration, policy: PolicyState, storeStatus: any StoreStatus, metrics: ToolgateMetrics,
        readiness: ToolgateServer.Readiness, servers: @escaping @Sendable () -> [UpstreamServer], listenHost: String
    ) {
        self.configuration = configuration
        self.policy = policy
        self.storeStatus = storeStatus
        self.metrics = metrics
        self.readiness = readiness
        self.servers = servers
        originGuard = RequestOriginGuard(
            boundToLoopback: RequestOriginGuard.isLoopback(listenHost: listenHost), allowedOrigins: configuration.allowedOrigins)
    }

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/metrics") { request, _ in
            if let refusal = refusal(request) { return refusal }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/healthz") { request, _ in
            if let refusal = refusal(request) { return refusal }
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { request, _ in refusal(request) ?? readyz() }
    }

    private func refusal(_ request: Request) -> Response? {
        switch originGuard.rejection(host: request.head.authority, origin: request.headers[.origin]) {
        case nil: nil
        case .badAuthority(let why): MCPProxy.httpError(.badRequest, .invalidRequest, why)
        case .forbidden(let why): MCPProxy.httpError(.forbidden, .invalidRequest, why)
        }
    }

    /// One server's state: `degraded` while it cannot serve (an HTTP server unreachable, a stdio server restarting),
    /// with the problem (DESIGN.md section 3): taking this sidecar out of rotation would not bring the server back.
    struct ServerState {
        let status: String
        let report: JSONObject
    }

    static func state(of server: UpstreamServer) -> ServerState {
        let observation = server.observation
        let restarting = observation.currentProblem
        let unreachable = observation.unreachableProblem
        var report: JSONObject = ["url": .string(server.configuration.upstreamShownURL)]
        if let problem = restarting ?? unreachable { report["problem"] = .string(problem) }
        if let last = observation.latest {
            report["lastStatus"] = .string(last.status)
            report["lastAnswerWasMCP"] = .bool(last.speaksMCP)
            report["lastAt"] = .string(AdminAPI.timestamp(Int64(last.at.timeIntervalSince1970 * 1_000)))
        }
        return ServerState(status: restarting != nil || unreachable != nil ? "degraded" : "ready", report: report)
    }

    func readyz() -> Response {
        let connected = storeStatus.isConnected
        let storeProblem = storeStatus.problem
        let servers = self.servers()
        let states = servers.map(Self.state(of:))
        let named = servers.contains { $0.name != nil }
        // One unnamed upstream: degraded while it cannot serve (section 3). Named servers (section 10): one down
        // makes the sidecar degraded, the others serve; all down, not_ready.
        let down = states.filter { $0.status != "ready" }.count
        let upstreamStatus: String
        if named {
            upstreamStatus = down == 0 ? "ready" : down == states.count ? "not_ready" : "degraded"
        } else {
            upstreamStatus = states.first?.status ?? "ready"
        }
        let status: String
        if readiness.isDraining || upstreamStatus == "not_ready" {
            status = "not_ready"
        } else if !connected || storeProblem != nil {
            status = configuration.failMode == .open ? "degraded" : "not_ready"
        } else {
            status = upstreamStatus
        }
        var store: JSONObject = [
            "kind": .string(storeStatus.kind), "connected": .bool(connected),
            "warnings": .array(storeStatus.warnings.map { .string($0) }),
        ]
        if let storeProblem { store["problem"] = .string(storeProblem) }
        if let cluster = storeStatus.cluster {
            store["cluster"] = [
                "nodes": .number(JSONNumber(cluster.nodes)), "masters": .number(JSONNumber(cluster.masters)),
                "slotsCovered": .number(JSONNumber(cluster.slotsCovered)),
            ]
        }
        var policyReport: JSONObject = ["sha256": .string(policy.snapshot.policy.sha256)]
        if let refused = policy.lastReloadError {
            policyReport["lastReloadError"] = [
                "path": .string(refused.path), "error": .string(refused.error),
                "time": .string(CallAudit.rfc3339(micros: refused.timeMicros)),
            ]
        }
        var body: JSONObject = [
            "status": .string(status),
            "policy": .object(policyReport),
            "store": .object(store),
        ]
        if named {
            var report = JSONObject()
            for (server, state) in zip(servers, states) {
                var entry = state.report
                entry["status"] = .string(state.status)
                report[server.name ?? ""] = .object(entry)
            }
            body["servers"] = .object(report)
        } else if let state = states.first {
            body["upstream"] = .object(state.report)
        }
        return MCPProxy.jsonResponse(status: status == "not_ready" ? .serviceUnavailable : .ok, .object(body))
    }
}
