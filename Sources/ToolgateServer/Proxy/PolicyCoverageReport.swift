import Logging
import Synchronization
import ToolgateCore

/// Holds the policy against the upstream's tools the first time an agent's `tools/list` answer shows them (and
/// again after a reload changes the policy), logging each problem once as a warning: a typo in a tool name shows up
/// in the log instead of as a tool that silently disappears. toolgate sends no request of its own for this; an
/// agent lists tools right after it connects.
final class PolicyCoverageReport: Sendable {
    private let checked = Mutex<Set<String>>([])
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func upstreamListed(_ tools: [JSONValue], policy: Policy, cursorPage: Bool) {
        // A later page of a paginated list holds only part of the tools: judging it would report false gaps.
        guard !cursorPage else { return }
        let first = checked.withLock { $0.insert(policy.sha256).inserted }
        guard first else { return }
        let listed = tools.compactMap { tool in
            tool["name"]?.stringValue.map { PolicyCoverage.UpstreamTool(name: $0, inputSchema: tool["inputSchema"]) }
        }
        let warnings = PolicyCoverage.warnings(policy: policy, file: "policy", tools: listed)
        for warning in warnings { logger.warning("policy and upstream disagree", metadata: ["problem": "\(warning)"]) }
        logger.info("policy held against the upstream's tools", metadata: ["tools": "\(listed.count)", "warnings": "\(warnings.count)"])
    }
}
