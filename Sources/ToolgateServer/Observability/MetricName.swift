/// Every metric toolgate exports (DESIGN.md section 8: the names are a contract), with its `# HELP` text.
public enum MetricName: String, CaseIterable, Sendable {
    case toolCalls = "toolgate_tool_calls_total"
    case decisionDuration = "toolgate_decision_duration_seconds"
    case storeOperations = "toolgate_store_operations_total"
    case storeDuration = "toolgate_store_duration_seconds"
    case upstreamRequests = "toolgate_upstream_requests_total"
    case upstreamDuration = "toolgate_upstream_duration_seconds"
    case inflightRequests = "toolgate_inflight_requests"
    case policyReloads = "toolgate_policy_reloads_total"
    case policyInfo = "toolgate_policy_info"
    case approvalsPending = "toolgate_approvals_pending"
    case buildInfo = "toolgate_build_info"
    case auditDropped = "toolgate_audit_dropped_total"
    case authFailures = "toolgate_auth_failures_total"
    case upstreamEventsDropped = "toolgate_upstream_events_dropped_total"
    case argumentChecksUndecided = "toolgate_argument_checks_undecided_total"
    case upstreamAnswersNotJSONRPC = "toolgate_upstream_answers_not_jsonrpc_total"
    case toolCallRounds = "toolgate_tool_call_rounds_total"
    case stdioRefusedResponses = "toolgate_stdio_refused_responses_total"
    case accessDecisions = "toolgate_access_decisions_total"

    public var help: String {
        switch self {
        case .toolCalls:
            "tools/call decisions by policy tool name (or _other) and decision: allowed, allowed_store_unavailable (admitted without limits: fail mode open), unknown_tool, shadow_denied, or a denial reason"
        case .decisionDuration: "Time to decide one tools/call, store round trip and any approval wait included"
        case .storeOperations: "Limit store operations by result: ok, timeout, error, or not_replicated (--redis-wait-replicas: too few replicas acknowledged a decision in time)"
        case .storeDuration: "Limit store round trip per tools/call decision"
        case .upstreamRequests: "Requests forwarded upstream by HTTP status, or by failure when there was none"
        case .upstreamDuration: "Time from forwarding a request to the upstream's response head"
        case .inflightRequests: "Requests on /mcp being handled now, open event streams included"
        case .policyReloads: "Policy reloads by result: success or failure (the policy in force stays)"
        case .policyInfo: "1 for the SHA-256 of the policy file in force, 0 for ones it replaced"
        case .approvalsPending: "tools/call requests on this sidecar waiting for a human's approval"
        case .buildInfo: "toolgate's version; always 1"
        case .auditDropped: "Audit lines dropped because the audit sink could not keep up"
        case .authFailures: "Requests refused for a missing or unknown bearer token"
        case .upstreamEventsDropped: "Upstream event-stream events dropped because their data was not JSON"
        case .argumentChecksUndecided: "tools/call denied because a regex argument rule could not be decided within the engine's bounds"
        case .upstreamAnswersNotJSONRPC: "Upstream answers that were not JSON-RPC, replaced by JSON-RPC errors, by HTTP status"
        case .stdioRefusedResponses:
            "Answers to a stdio upstream's own requests refused (HTTP 400) by reason: other_client (the request was routed to another client) or unknown_request"
        case .accessDecisions:
            "Requests naming a resource or prompt (read, subscribe, unsubscribe, get, complete) by kind (resource or prompt) and decision: allowed, denied (answered as if absent), shadow_denied"
        case .toolCallRounds: "Rounds of multi-round tools/call: remembered, follow_up (not charged), unrecognized (charged), remember_failed, lookup_failed"
        }
    }
}
