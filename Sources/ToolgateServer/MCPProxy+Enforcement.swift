import CoreMetrics
import Logging
import ToolgateCore

/// The outcome of checking one `tools/call`.
enum Enforcement: Sendable {
    /// Forward it; `receipt` is what the call consumed, for a refund if the upstream refuses it up front; `quota`
    /// goes on the answer's headers; `call` is what an `input_required` answer's state is bound to.
    case forward(receipt: LimitReceipt?, quota: RateLimitHeaders? = nil, call: ToolCall)
    /// Answer it here with this JSON-RPC response.
    case answer(JSONValue, retryAfter: Int?, quota: RateLimitHeaders? = nil)
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
        let decision = policy.snapshot.evaluator.evaluate(call, identity: exchange.identity)
        let rule = decision.rule ?? Policy.wildcardKey
        func deny(_ denial: ToolCallDenial, quota: RateLimitHeaders? = nil) -> Enforcement {
            metrics.toolCall(tool: decision.metricTool, decision: .denied(denial.reason))
            logger.info(
                "tool call denied",
                metadata: [
                    "tool": "\(call.name)", "grant": "\(exchange.identity.grant)", "reason": "\(denial.reason.rawValue)",
                    "rule": "\(denial.rule)",
                ])
            return .answer(
                JSONRPCResponse.result(id: id, denial.result(era: exchange.era)), retryAfter: denial.retryAfterSeconds, quota: quota)
        }
        let approval: ApprovalSettings?
        switch decision.verdict {
        case .unknownTool:
            metrics.toolCall(tool: decision.metricTool, decision: .unknownTool)
            return .answer(ToolCallDenial.unknownTool(id: id, name: call.name), retryAfter: nil)
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
            approval = settings
        case .allowed:
            approval = nil
        }
        if let state = call.requestState, approval != nil || !decision.charges.isEmpty,
            await isFollowUpRound(call, requestState: state, exchange: exchange)
        {
            // DESIGN.md section 7: the call was approved and charged in its first round.
            metrics.toolCall(tool: decision.metricTool, decision: .allowed)
            return .forward(receipt: nil, call: call)
        }
        if let approval, let denial = await awaitApproval(call, settings: approval, exchange: exchange, rule: rule) {
            return deny(denial)
        }
        guard !decision.charges.isEmpty else {
            metrics.toolCall(tool: decision.metricTool, decision: .allowed)
            return .forward(receipt: nil, call: call)
        }
        let callID = Self.newCallID()
        let outcome: LimitOutcome
        let storeStarted = ContinuousClock.now
        do {
            outcome = try await store.acquire(LimitRequest(callID: callID, charges: decision.charges))
            metrics.storeOperation(result: "ok")
        } catch {
            metrics.storeOperation(result: error.code == .timeout ? "timeout" : "error")
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
                metrics.toolCall(tool: decision.metricTool, decision: .allowed)
                return .forward(receipt: nil, call: call)
            }
        }
        metrics.storeDuration.recordInterval(since: storeStarted)
        let quota = RateLimitHeaders.tightest(charges: decision.charges, outcome: outcome)
        guard outcome.admitted else {
            let denial = ToolCallDenial.rateLimited(charges: decision.charges, outcome: outcome)
                ?? ToolCallDenial(reason: .rateLimited, rule: rule, message: "rate limited")
            return deny(denial, quota: quota)
        }
        let shadowFailed = zip(decision.charges, outcome.results).contains { $0.shadow && !$1.passed }
        metrics.toolCall(tool: decision.metricTool, decision: shadowFailed ? .shadowDenied : .allowed)
        // The store's decision time (Redis TIME on Redis): what fleet-wide exactness is judged by.
        logger.debug(
            "tool call admitted",
            metadata: ["tool": "\(call.name)", "callID": "\(callID)", "decidedAtMicros": "\(outcome.decidedAtMicros)"])
        return .forward(receipt: outcome.receipt, quota: quota, call: call)
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
        _ call: ToolCall, settings: ApprovalSettings, exchange: Exchange, rule: String
    ) async -> ToolCallDenial? {
        let binding = ApprovalBinding(
            grant: exchange.identity.grant, tool: call.name, arguments: call.arguments, policySHA256: policy.snapshot.policy.sha256)
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
