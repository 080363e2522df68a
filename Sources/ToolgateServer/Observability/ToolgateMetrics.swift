import CoreMetrics
import Prometheus
import Synchronization
import ToolgateCore

/// The metrics of DESIGN.md section 8, through swift-metrics with a Prometheus registry behind it. Each server owns
/// its registry, so tests can run several servers in one process; a test may instead hand in swift-metrics' test
/// factory and read each metric back by name and labels. Every label value comes from an enum here, a policy key,
/// or a status code, so cardinality stays bounded.
public final class ToolgateMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: any CoreMetrics.MetricsFactory

    /// Values of `toolgate_tool_calls_total`'s `decision` label: a denial reason, or one of these.
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Admitted without limits because the store failed and the fail mode is open: on its own, so an operator
        /// sees that limits were off.
        case allowedStoreUnavailable
        case unknownTool
        /// Allowed, but the policy would have refused it: a `shadow` limit, or anything under `--shadow`.
        case shadowDenied
        case denied(ToolCallDenial.Reason)

        public var label: String {
            switch self {
            case .allowed: "allowed"
            case .allowedStoreUnavailable: "allowed_store_unavailable"
            case .unknownTool: "unknown_tool"
            case .shadowDenied: "shadow_denied"
            case .denied(let reason): reason.rawValue
            }
        }
    }

    public enum StoreResult: String, Sendable {
        case ok, timeout, error
        /// `--redis-wait-replicas`: the decision consumed, but too few replicas acknowledged it in time.
        case notReplicated = "not_replicated"
    }

    public enum ReloadResult: String, Sendable {
        case success, failure
    }

    /// What `toolgate_upstream_requests_total{status}` says: the HTTP status, or the failure when there was none.
    public enum UpstreamStatus: Sendable {
        case http(Int)
        case failed(UpstreamError.Code)

        var label: String {
            switch self {
            case .http(let status): String(status)
            case .failed(let code): code.metricLabel
            }
        }
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

    /// Values of `toolgate_access_decisions_total`'s `decision` label.
    public enum AccessDecision: String, Sendable {
        case allowed
        /// Kept out by the `resources` or `prompts` section: answered as the upstream answers an absent one.
        case denied
        /// Would have been kept out; forwarded under `--shadow`.
        case shadowDenied = "shadow_denied"
    }

    /// Labelled counters, made on first use.
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let serverTimers = Mutex<[String: CoreMetrics.Timer]>([:])
    private let policyInfo = Mutex<(sha: String, gauge: CoreMetrics.Gauge)?>(nil)

    public let decisionDuration: CoreMetrics.Timer
    public let storeDuration: CoreMetrics.Timer
    public let inflightRequests: CoreMetrics.Meter
    public let approvalsPending: CoreMetrics.Gauge

    static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10), .seconds(30),
    ]

    /// `factory`: nil for the Prometheus registry that `/metrics` shows; a test factory to read metrics back.
    /// toolgate's version, as `toolgate_build_info` shows it.
    public let version: String

    public init(version: String, factory: (any CoreMetrics.MetricsFactory)? = nil) {
        self.version = version
        registry = PrometheusCollectorRegistry()
        let factory = factory ?? DescribedPrometheusFactory(registry: registry, durationBuckets: Self.durationBuckets)
        self.factory = factory
        decisionDuration = CoreMetrics.Timer(label: MetricName.decisionDuration.rawValue, dimensions: [], factory: factory)
        storeDuration = CoreMetrics.Timer(label: MetricName.storeDuration.rawValue, dimensions: [], factory: factory)
        inflightRequests = CoreMetrics.Meter(label: MetricName.inflightRequests.rawValue, dimensions: [], factory: factory)
        approvalsPending = CoreMetrics.Gauge(label: MetricName.approvalsPending.rawValue, dimensions: [], factory: factory)
        approvalsPending.record(0)
        CoreMetrics.Gauge(label: MetricName.buildInfo.rawValue, dimensions: [("version", version)], factory: factory).record(1)
        // Counters without labels show from the start, at 0, so a rate() over them works before the first event.
        counter(.auditDropped, []).increment(by: 0)
        counter(.authFailures, []).increment(by: 0)
    }

    public func toolCall(tool: String, decision: Decision, server: String? = nil) {
        counter(.toolCalls, [("tool", tool), ("decision", decision.label)] + Self.label(server)).increment()
    }

    /// A request naming a resource or prompt, judged by the policy's `resources` or `prompts` section.
    public func accessDecision(kind: ResourceAndPromptGate.Kind, decision: AccessDecision, server: String? = nil) {
        counter(.accessDecisions, [("kind", kind.rawValue), ("decision", decision.rawValue)] + Self.label(server)).increment()
    }

    public func storeOperation(_ result: StoreResult) {
        counter(.storeOperations, [("result", result.rawValue)]).increment()
    }

    public func upstreamRequest(_ status: UpstreamStatus, server: String? = nil) {
        counter(.upstreamRequests, [("status", status.label)] + Self.label(server)).increment()
    }

    /// Calls denied because a `regex` rule could not be decided within the engine's bounds.
    public func argumentCheckUndecided(tool: String, server: String? = nil) {
        counter(.argumentChecksUndecided, [("tool", tool)] + Self.label(server)).increment()
    }

    /// Upstream answers that were not JSON-RPC (a wrong `--upstream` path's 404 page, say), replaced by errors.
    public func upstreamAnswerNotJSONRPC(status: Int, server: String? = nil) {
        counter(.upstreamAnswersNotJSONRPC, [("status", String(status))] + Self.label(server)).increment()
    }

    /// A client's answer to a stdio upstream's request refused: it was not that client's to answer.
    public func stdioResponseRefused(_ reason: StdioMultiplexer.ResponseRefusal, server: String? = nil) {
        counter(.stdioRefusedResponses, [("reason", reason.rawValue)] + Self.label(server)).increment()
    }

    /// Requests refused for a missing or unknown bearer token.
    public func authFailure() {
        counter(.authFailures, []).increment()
    }

    /// Upstream events dropped because their data was not JSON (they could hide a tool list).
    public func upstreamEventsDropped(_ count: Int) {
        counter(.upstreamEventsDropped, []).increment(by: Int64(count))
    }

    /// Audit lines dropped under back-pressure.
    public func auditDropped(_ count: Int) {
        counter(.auditDropped, []).increment(by: Int64(count))
    }

    public func policyReload(_ result: ReloadResult) {
        counter(.policyReloads, [("result", result.rawValue)]).increment()
    }

    public func round(_ event: RoundEvent) {
        counter(.toolCallRounds, [("event", event.rawValue)]).increment()
    }

    /// `toolgate_policy_info{sha256}` is 1 for the policy in force and 0 for the one it replaced.
    public func policyInForce(sha256: String) {
        policyInfo.withLock { current in
            if let current, current.sha == sha256 { return }
            current?.gauge.record(0)
            let gauge = CoreMetrics.Gauge(label: MetricName.policyInfo.rawValue, dimensions: [("sha256", sha256)], factory: factory)
            gauge.record(1)
            current = (sha256, gauge)
        }
    }

    /// `toolgate_upstream_duration_seconds` of one server (DESIGN.md section 10); nil: the one unnamed upstream,
    /// whose series keep the labels they had before servers had names. Made on first use: a family is either
    /// unlabelled or labelled by server, never both.
    public func upstreamDuration(server: String?) -> CoreMetrics.Timer {
        serverTimers.withLock { timers in
            if let timer = timers[server ?? ""] { return timer }
            let timer = CoreMetrics.Timer(
                label: MetricName.upstreamDuration.rawValue, dimensions: server.map { [("server", $0)] } ?? [], factory: factory)
            timers[server ?? ""] = timer
            return timer
        }
    }

    /// The unnamed upstream's `toolgate_upstream_duration_seconds`.
    public var upstreamDuration: CoreMetrics.Timer { upstreamDuration(server: nil) }

    /// The `server` label of a named server's series. Names come from the servers file, so the label is bounded.
    private static func label(_ server: String?) -> [(String, String)] {
        server.map { [("server", $0)] } ?? []
    }

    /// Prometheus text exposition format.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    private func counter(_ name: MetricName, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = ([name.rawValue] + dimensions.map { $0.1 }).joined(separator: "\u{0}")
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: name.rawValue, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
    }
}
