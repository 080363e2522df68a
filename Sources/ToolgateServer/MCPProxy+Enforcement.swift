import CoreMetrics
import Logging
import ToolgateCore

/// The outcome of checking one `tools/call`.
enum Enforcement: Sendable {
    /// Forward it; `receipt` is what the call consumed, for a refund if the upstream refuses it up front; `quota`
    /// goes on the answer's headers; `call` is what an `input_required` answer's state is bound to; `audit` is
    /// completed with the upstream's status.
    case forward(receipt: LimitReceipt?, quota: RateLimitHeaders? = nil, call: ToolCall, audit: CallAudit?)
    /// Answer it here with this JSON-RPC response.
    case answer(JSONValue, retryAfter: Int?, quota: RateLimitHeaders? = nil, audit: CallAudit? = nil)
}

extension MCPProxy {
    func enforce(_ message: JSONRPCMessage, _ exchange: Exchange) async -> Enforcement {
        let started = ContinuousClock.now
        defer { metrics.decisionDuration.recordInterval(since: started) }
        let id = message.id ?? .null
        let call: ToolCall
        do {
            call = try message.toolCall()
        } catch {
            return .answer(JSONRPCResponse.error(id: id, code: error.code, message: error.message), retryAfter: nil)
        }
        let snapshot = exchange.snapshot
        let decision = snapshot.evaluator.evaluate(call, identity: exchange.identity)
        let rule = decision.rule ?? Policy.wildcardKey
        let shadowAll = configuration.shadow
        /// Counts the decision and, with an audit log, drafts its line.
        func record(_ outcome: ToolgateMetrics.Decision, reason: String? = nil, counter: String? = nil, remaining: Int? = nil)
            -> CallAudit?
        {
            metrics.toolCall(tool: decision.metricTool, decision: outcome)
            guard auditLog != nil else { return nil }
            return CallAudit(
                timeMicros: SystemWallClock().nowMicros(), started: exchange.started, grant: exchange.identity.grant,
                session: exchange.identity.session, agent: exchange.identity.agent, tool: call.name, rule: rule, decision: outcome.label,
                reason: reason, counter: counter, remaining: remaining, arguments: call.arguments, policySHA256: snapshot.policy.sha256)
        }
        func deny(_ denial: ToolCallDenial, quota: RateLimitHeaders? = nil) -> Enforcement {
            let counter = denial.limit?.counter
            let remaining = denial.limit == nil ? nil : 0
            if shadowAll {
                // --shadow: nothing is denied; what would have been is counted and logged.
                logger.info(
                    "shadow: tool call would be denied; forwarded",
                    metadata: ["tool": "\(call.name)", "grant": "\(exchange.identity.grant)", "reason": "\(denial.reason.rawValue)"])
                return .forward(
                    receipt: nil, call: call,
                    audit: record(.shadowDenied, reason: denial.reason.rawValue, counter: counter, remaining: remaining))
            }
            logger.info(
                "tool call denied",
                metadata: [
                    "tool": "\(call.name)", "grant": "\(exchange.identity.grant)", "reason": "\(denial.reason.rawValue)",
                    "rule": "\(denial.rule)",
                ])
            return .answer(
                JSONRPCResponse.result(id: id, denial.result(era: exchange.era)), retryAfter: denial.retryAfterSeconds, quota: quota,
                audit: record(.denied(denial.reason), reason: denial.reason.rawValue, counter: counter, remaining: remaining))
        }
        let approval: ApprovalSettings?
        switch decision.verdict {
        case .unknownTool:
            if shadowAll {
                return .forward(receipt: nil, call: call, audit: record(.shadowDenied, reason: "unknown_tool"))
            }
            return .answer(ToolCallDenial.unknownTool(id: id, name: call.name), retryAfter: nil, audit: record(.unknownTool))
        case .denied(let message):
            return deny(ToolCallDenial(reason: .denied, rule: rule, message: message))
        case .invalidArguments(let message, let undecided):
            if undecided {
                metrics.argumentCheckUndecided(tool: decision.metricTool)
                logger.warning(
                    "argument rule could not be decided within the regex engine's bounds; denied",
                    metadata: ["tool": "\(call.name.prefix(128))", "rule": "\(rule)"])
            }
            return deny(ToolCallDenial(reason: .invalidArguments, rule: rule, message: message))
        case .approvalRequired(let settings):
            // --shadow never waits for a human: the call would have needed one.
            if shadowAll { return deny(ToolCallDenial(reason: .approvalRequired, rule: rule, message: "needs a human's approval")) }
            approval = settings
        case .allowed:
            approval = nil
        }
        if let state = call.requestState, approval != nil || !decision.charges.isEmpty,
            await isFollowUpRound(call, requestState: state, exchange: exchange)
        {
            // DESIGN.md section 7: the call was approved and charged in its first round.
            return .forward(receipt: nil, call: call, audit: record(.allowed, reason: "follow_up_round"))
        }
        if let approval,
            let denial = await awaitApproval(call, settings: approval, exchange: exchange, rule: rule, policySHA256: snapshot.policy.sha256)
        {
            return deny(denial)
        }
        guard !decision.charges.isEmpty else {
            return .forward(receipt: nil, call: call, audit: record(.allowed))
        }
        // Under --shadow every limit is a shadow limit: consumed when it passes, never blocking.
        let charges = shadowAll ? decision.charges.map { $0.asShadow } : decision.charges
        let callID = Self.newCallID()
        let outcome: LimitOutcome
        let storeStarted = ContinuousClock.now
        do {
            outcome = try await store.acquire(LimitRequest(callID: callID, charges: charges))
            metrics.storeOperation(.ok)
        } catch {
            metrics.storeOperation(error.code == .timeout ? .timeout : .error)
            switch configuration.failMode {
            case .closed:
                if let suppressed = storeFailureLog.admit() {
                    logger.error(
                        "limit store failed; denying (fail mode closed)",
                        metadata: ["error": "\(error)", "suppressedSinceLastLine": "\(suppressed)"])
                }
                return deny(
                    ToolCallDenial(
                        reason: .storeUnavailable, rule: rule, message: "the rate-limit store is unavailable; try again in a second",
                        retryAfterSeconds: 1))
            case .open:
                if let suppressed = storeFailureLog.admit() {
                    logger.warning(
                        "limit store failed; allowing without limits (fail mode open)",
                        metadata: ["error": "\(error)", "suppressedSinceLastLine": "\(suppressed)"])
                }
                return .forward(receipt: nil, call: call, audit: record(.allowedStoreUnavailable, reason: "store_unavailable"))
            }
        }
        metrics.storeDuration.recordInterval(since: storeStarted)
        let quota = RateLimitHeaders.tightest(charges: decision.charges, outcome: outcome)
        guard outcome.admitted else {
            let denial = ToolCallDenial.rateLimited(charges: charges, outcome: outcome)
                ?? ToolCallDenial(reason: .rateLimited, rule: rule, message: "rate limited")
            return deny(denial, quota: quota)
        }
        let failedShadow = zip(charges, outcome.results).first { $0.shadow && !$1.passed }?.0
        // The store's decision time (Redis TIME on Redis): what fleet-wide exactness is judged by.
        logger.debug(
            "tool call admitted",
            metadata: ["tool": "\(call.name)", "callID": "\(callID)", "decidedAtMicros": "\(outcome.decidedAtMicros)"])
        let audit: CallAudit?
        if let failedShadow {
            audit = record(.shadowDenied, reason: ToolCallDenial.Reason.rateLimited.rawValue, counter: failedShadow.counter, remaining: 0)
        } else {
            // The limit with the least left, for the audit line only: no work for it without an audit log.
            let tightest =
                auditLog == nil
                ? nil : zip(charges, outcome.results).filter { !$0.0.shadow || shadowAll }.min { $0.1.remaining < $1.1.remaining }
            audit = record(.allowed, counter: tightest?.0.counter, remaining: tightest?.1.remaining)
        }
        return .forward(receipt: outcome.receipt, quota: shadowAll ? nil : quota, call: call, audit: audit)
    }

    /// Whether the call carries a `requestState` toolgate relayed to this grant for this tool and these arguments,
    /// not used yet; it is used up here. A store failure reads as "no": the call is then charged as a new one.
    private func isFollowUpRound(_ call: ToolCall, requestState: String, exchange: Exchange) async -> Bool {
        let binding = RoundBinding(grant: exchange.identity.grant, tool: call.name, arguments: call.arguments, requestState: requestState)
        do {
            let remembered = try await roundStates.take(binding)
            metrics.round(remembered ? .followUp : .unrecognized)
            if remembered {
                logger.debug("follow-up round of a multi-round call; not charged again", metadata: ["tool": "\(call.name)"])
            }
            return remembered
        } catch {
            metrics.round(.lookupFailed)
            logger.warning("could not look up a multi-round call's state; charging it as a new call", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Remembers each `requestState` relayed to the agent, before the agent can answer it. A failure only costs the
    /// follow-up its free pass: it is charged like a new call.
    func rememberRounds(_ rounds: [ResponseRelay.RelayedRound], grant: String) async {
        for round in rounds {
            let binding = RoundBinding(grant: grant, tool: round.tool, arguments: round.arguments, requestState: round.requestState)
            do {
                try await roundStates.remember(binding, ttlSeconds: RoundBinding.lifetimeSeconds)
                metrics.round(.remembered)
            } catch {
                metrics.round(.rememberFailed)
                logger.warning(
                    "could not remember a multi-round call's state; its follow-up will be charged", metadata: ["error": "\(error)"])
            }
        }
    }

    /// DESIGN.md section 6: use an approval given for exactly this call, or ask for one and wait up to
    /// `approval.wait`. Nil: approved (and used up), proceed to the limits; otherwise the denial to answer.
    private func awaitApproval(
        _ call: ToolCall, settings: ApprovalSettings, exchange: Exchange, rule: String, policySHA256: String
    ) async -> ToolCallDenial? {
        let binding = ApprovalBinding(grant: exchange.identity.grant, tool: call.name, arguments: call.arguments, policySHA256: policySHA256)
        let deadline = ContinuousClock.now + .seconds(settings.waitSeconds)
        var lastID: String?
        while true {
            let start: ApprovalStart
            do {
                start = try await approvals.store.start(binding, newID: Approval.newID(for: binding), ttlSeconds: settings.ttlSeconds)
            } catch {
                // Never approved by default, whatever the fail mode: no human said yes.
                logger.error("approval store failed; denying", metadata: ["error": "\(error)"])
                return ToolCallDenial(
                    reason: .storeUnavailable, rule: rule,
                    message: "the approval store is unavailable; try again in a second", retryAfterSeconds: 1)
            }
            switch start {
            case .consumed(let id):
                logger.info("approved call proceeds", metadata: ["tool": "\(call.name)", "approvalId": "\(id)"])
                return nil
            case .denied(let id):
                return ToolCallDenial(
                    reason: .approvalDenied, rule: rule, message: "a human denied this call to \(call.name)", approvalID: id)
            case .pending(let approval):
                lastID = approval.id
                if approval.state == .pending, ContinuousClock.now < deadline {
                    logger.info(
                        "tool call waits for approval",
                        metadata: ["tool": "\(call.name)", "grant": "\(binding.grant)", "approvalId": "\(approval.id)"])
                }
            }
            guard ContinuousClock.now < deadline, let id = lastID else { break }
            switch await approvals.wait(for: id, until: deadline, agent: exchange.agent) {
            case .approved, .gone: continue  // use it (or, if an identical call used it first, ask again)
            case .denied:
                return ToolCallDenial(
                    reason: .approvalDenied, rule: rule, message: "a human denied this call to \(call.name)", approvalID: id)
            case .timedOut:
                break
            }
            break
        }
        return ToolCallDenial(
            reason: .approvalRequired, rule: rule,
            message: "tool \(call.name) needs a human's approval: ask an approver to approve \(lastID ?? "it"), then retry the identical call",
            approvalID: lastID)
    }

    /// 128 random bits: unique per call across the fleet, and the sliding log's member.
    static func newCallID() -> String {
        var generator = SystemRandomNumberGenerator()
        let a = generator.next() as UInt64
        let b = generator.next() as UInt64
        return String(a, radix: 16) + "-" + String(b, radix: 16)
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
