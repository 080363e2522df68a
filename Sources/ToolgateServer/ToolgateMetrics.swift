import CoreMetrics
import Prometheus
import Synchronization
import ToolgateCore

/// The metrics of DESIGN.md section 8, through swift-metrics with a Prometheus registry behind it.
/// Each server owns its registry, so tests can run several servers in one process.
public final class ToolgateMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    /// Values of `toolgate_tool_calls_total`'s `decision` label: a denial reason, or one of these three.
    public enum Decision: Sendable {
        case allowed
        case unknownTool
        /// Allowed, but a `shadow` limit would have refused it.
        case shadowDenied
        case denied(ToolCallDenial.Reason)

        var label: String {
            switch self {
            case .allowed: "allowed"
            case .unknownTool: "unknown_tool"
            case .shadowDenied: "shadow_denied"
            case .denied(let reason): reason.rawValue
            }
        }
    }

    /// Labelled counters, made on first use; label values are bounded (policy keys, enums, status codes).
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let policyInfo = Mutex<(sha: String, gauge: CoreMetrics.Gauge)?>(nil)

    public let decisionDuration: CoreMetrics.Timer
    public let storeDuration: CoreMetrics.Timer
    public let upstreamDuration: CoreMetrics.Timer
    public let inflightRequests: CoreMetrics.Meter
    public let approvalsPending: CoreMetrics.Gauge

    public init(version: String) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
            .seconds(10), .seconds(30),
        ]
        self.factory = factory
        decisionDuration = CoreMetrics.Timer(label: "toolgate_decision_duration_seconds", dimensions: [], factory: factory)
        storeDuration = CoreMetrics.Timer(label: "toolgate_store_duration_seconds", dimensions: [], factory: factory)
        upstreamDuration = CoreMetrics.Timer(label: "toolgate_upstream_duration_seconds", dimensions: [], factory: factory)
        inflightRequests = CoreMetrics.Meter(label: "toolgate_inflight_requests", dimensions: [], factory: factory)
        approvalsPending = CoreMetrics.Gauge(label: "toolgate_approvals_pending", dimensions: [], factory: factory)
        approvalsPending.record(0)
        CoreMetrics.Gauge(label: "toolgate_build_info", dimensions: [("version", version)], factory: factory).record(1)
    }

    public func toolCall(tool: String, decision: Decision) {
        counter("toolgate_tool_calls_total", [("tool", tool), ("decision", decision.label)]).increment()
    }

    public func storeOperation(result: String) {
        counter("toolgate_store_operations_total", [("result", result)]).increment()
    }

    /// `status` is the HTTP status code, or the failure (`unreachable`, `headers_timeout`, …) when there was none.
    public func upstreamRequest(status: String) {
        counter("toolgate_upstream_requests_total", [("status", status)]).increment()
    }

    /// Calls denied because a `regex` rule could not be decided within the engine's bounds.
    public func argumentCheckUndecided(tool: String) {
        counter("toolgate_argument_checks_undecided_total", [("tool", tool)]).increment()
    }

    /// Upstream answers that were not JSON-RPC (a wrong `--upstream` path's 404 page, say), replaced by errors.
    public func upstreamAnswerNotJSONRPC(status: String) {
        counter("toolgate_upstream_answers_not_jsonrpc_total", [("status", status)]).increment()
    }

    /// What happened to one round of a multi-round `tools/call` (DESIGN.md section 7).
    public enum RoundEvent: String, Sendable {
        /// An `input_required` answer's `requestState` was remembered.
        case remembered
        /// It could not be (store failure): the follow-up will be charged.
        case rememberFailed = "remember_failed"
        /// A follow-up carried a remembered state: not charged again.
        case followUp = "follow_up"
        /// A follow-up carried a state toolgate never relayed, or relayed and saw used: charged as a new call.
        case unrecognized
        /// The store could not say: charged as a new call.
        case lookupFailed = "lookup_failed"
    }

    public func round(_ event: RoundEvent) {
        counter("toolgate_tool_call_rounds_total", [("event", event.rawValue)]).increment()
    }

    /// Requests refused for a missing or unknown bearer token.
    public func authFailure() {
        counter("toolgate_auth_failures_total", []).increment()
    }

    /// Upstream events dropped because their data was not JSON (they could hide a tool list).
    public func upstreamEventsDropped(_ count: Int) {
        counter("toolgate_upstream_events_dropped_total", []).increment(by: Int64(count))
    }

    public func policyReload(result: String) {
        counter("toolgate_policy_reloads_total", [("result", result)]).increment()
    }

    /// `toolgate_policy_info{sha256}` is 1 for the policy in force and 0 for the one it replaced.
    public func policyInForce(sha256: String) {
        policyInfo.withLock { current in
            if let current, current.sha == sha256 { return }
            current?.gauge.record(0)
            let gauge = CoreMetrics.Gauge(label: "toolgate_policy_info", dimensions: [("sha256", sha256)], factory: factory)
            gauge.record(1)
            current = (sha256, gauge)
        }
    }

    /// Prometheus text exposition format.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = ([label] + dimensions.map { $0.1 }).joined(separator: "\u{0}")
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
    }
}
