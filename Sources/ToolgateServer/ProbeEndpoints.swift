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

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in readyz() }
    }

    func readyz() -> Response {
        let connected = storeStatus.isConnected
        let storeProblem = storeStatus.problem
        let status: String
        let upstreamProblem = observation.currentProblem
        if readiness.isDraining || upstreamProblem != nil {
            status = "not_ready"
        } else if !connected || storeProblem != nil {
            status = configuration.failMode == .open ? "degraded" : "not_ready"
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
        var upstreamReport: JSONObject = ["url": .string(configuration.upstreamURL)]
        if let upstreamProblem { upstreamReport["problem"] = .string(upstreamProblem) }
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
}
