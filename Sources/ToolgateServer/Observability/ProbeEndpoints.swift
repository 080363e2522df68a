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
    let observation: UpstreamObservation
    /// DNS-rebinding protection for the probes: on loopback only a loopback `Host`, and no foreign `Origin`. Names
    /// given with `--allowed-host` are not required here: scrapers and kubelet probes address a pod by its IP.
    let originGuard: RequestOriginGuard

    init(
        configuration: ServerConfiguration, policy: PolicyState, storeStatus: any StoreStatus, metrics: ToolgateMetrics,
        readiness: ToolgateServer.Readiness, observation: UpstreamObservation, listenHost: String
    ) {
        self.configuration = configuration
        self.policy = policy
        self.storeStatus = storeStatus
        self.metrics = metrics
        self.readiness = readiness
        self.observation = observation
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

    func readyz() -> Response {
        let connected = storeStatus.isConnected
        let storeProblem = storeStatus.problem
        let status: String
        let restarting = observation.currentProblem
        let unreachable = observation.unreachableProblem
        let upstreamProblem = restarting ?? unreachable
        if readiness.isDraining || restarting != nil {
            status = "not_ready"
        } else if !connected || storeProblem != nil {
            status = configuration.failMode == .open ? "degraded" : "not_ready"
        } else if unreachable != nil {
            status = "degraded"
        } else {
            status = "ready"
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
        var upstreamReport: JSONObject = ["url": .string(configuration.upstreamShownURL)]
        if let upstreamProblem { upstreamReport["problem"] = .string(upstreamProblem) }
        if let last = observation.latest {
            upstreamReport["lastStatus"] = .string(last.status)
            upstreamReport["lastAnswerWasMCP"] = .bool(last.speaksMCP)
            upstreamReport["lastAt"] = .string(AdminAPI.timestamp(Int64(last.at.timeIntervalSince1970 * 1_000)))
        }
        var policyReport: JSONObject = ["sha256": .string(policy.snapshot.policy.sha256)]
        if let refused = policy.lastReloadError {
            policyReport["lastReloadError"] = [
                "path": .string(refused.path), "error": .string(refused.error),
                "time": .string(CallAudit.rfc3339(micros: refused.timeMicros)),
            ]
        }
        let body: JSONValue = [
            "status": .string(status),
            "policy": .object(policyReport),
            "store": .object(store),
            "upstream": .object(upstreamReport),
        ]
        return MCPProxy.jsonResponse(status: status == "not_ready" ? .serviceUnavailable : .ok, body)
    }
}
