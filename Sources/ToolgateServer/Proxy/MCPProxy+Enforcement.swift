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
        /// The denial's `rule` (DESIGN.md section 5): `"*"` for a call no entry covers. The audit line says null.
        let rule = decision.rule ?? Policy.wildcardKey
        let shadowAll = configuration.shadow
        /// What decided a refusal the evaluator made (argument rule, hiding, `action: deny`), for the audit line.
        let evaluatorDetail = decision.detail?.text(ruleOfCall: decision.rule)
        /// Counts the decision and, with an audit log, drafts its line. The line's `rule` is the entry's key, or
        /// null for a tool no entry covers (the denial's own `rule` is unchanged).
        func record(
            _ outcome: ToolgateMetrics.Decision, reason: String? = nil, detail: String? = nil, counter: String? = nil,
            remaining: Int? = nil, approvalID: String? = nil
        ) -> CallAudit? {
            metrics.toolCall(tool: decision.metricTool, decision: outcome, server: configuration.serverName)
            guard auditLog != nil else { return nil }
            return CallAudit(
                timeMicros: SystemWallClock().nowMicros(), started: exchange.started, grant: exchange.identity.grant,
                session: exchange.identity.session, agent: exchange.identity.agent, server: configuration.serverName, tool: call.name,
                rule: decision.rule,
                decision: outcome.label, reason: reason, detail: detail, counter: counter, remaining: remaining,
                arguments: call.arguments, policySHA256: snapshot.policy.sha256, approvalID: approvalID)
        }
        /// The audit line's `detail` for a denial: what decided it.
        func auditDetail(_ denial: ToolCallDenial) -> String {
            if let limit = denial.limit { return "limit \(limit.counter)" }
            switch denial.reason {
            case .denied, .invalidArguments: return evaluatorDetail ?? denial.reason.rawValue
            case .approvalRequired: return denial.approvalID.map { "approval \($0) not decided" } ?? "approval required"
            case .approvalDenied: return denial.approvalID.map { "approval \($0) denied" } ?? "approval denied"
            case .storeUnavailable: return "store unavailable"
            case .rateLimited: return "limit"  // a limit's denial carries its counter (above)
            }
        }
        /// The audit line's `reason` for a denial: what the agent read, except that a cost argument's value (which
        /// that text may name) never reaches the audit log.
        func auditReason(_ denial: ToolCallDenial) -> String {
            if denial.reason == .invalidArguments, case .cost(let counter, let path) = decision.detail {
                return "argument \(path) cannot be charged against limit \(counter)"
            }
            return denial.message
        }
        func deny(_ denial: ToolCallDenial, quota: RateLimitHeaders? = nil, detail: String? = nil) -> Enforcement {
            let counter = denial.limit?.counter
            let remaining = denial.limit == nil ? nil : 0
            let detail = detail ?? auditDetail(denial)
            if shadowAll {
                // --shadow: nothing is denied; what would have been is counted and logged.
                logger.info(
                    "shadow: tool call would be denied; forwarded",
                    metadata: ["tool": "\(call.name)", "grant": "\(exchange.identity.grant)", "reason": "\(denial.reason.rawValue)"])
                return .forward(
                    receipt: nil, call: call,
                    audit: record(.shadowDenied, reason: denial.reason.rawValue, detail: detail, counter: counter, remaining: remaining))
            }
            logger.info(
                "tool call denied",
                metadata: [
                    "tool": "\(call.name)", "grant": "\(exchange.identity.grant)", "reason": "\(denial.reason.rawValue)",
                    "rule": "\(denial.rule)",
                ])
            return .answer(
                JSONRPCResponse.result(id: id, denial.result(era: exchange.era, server: configuration.serverName)), retryAfter: denial.retryAfterSeconds, quota: quota,
                audit: record(
                    .denied(denial.reason), reason: auditReason(denial), detail: detail, counter: counter, remaining: remaining))
        }
        let approval: ApprovalSettings?
        switch decision.verdict {
        case .unknownTool:
            if shadowAll {
                return .forward(receipt: nil, call: call, audit: record(.shadowDenied, reason: "unknown_tool", detail: evaluatorDetail))
            }
            let why = decision.detail == .hidden ? "the policy hides this tool" : "no policy entry covers this tool, and the default is deny"
            return .answer(
                ToolCallDenial.unknownTool(id: id, name: call.name), retryAfter: nil,
                audit: record(.unknownTool, reason: why + "; answered as an unknown tool", detail: evaluatorDetail))
        case .denied(let message):
            return deny(ToolCallDenial(reason: .denied, rule: rule, message: message))
        case .invalidArguments(let message, let undecided):
            if undecided {
                metrics.argumentCheckUndecided(tool: decision.metricTool, server: configuration.serverName)
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
            return .forward(receipt: nil, call: call, audit: record(.allowed, reason: "follow-up round of a call already admitted and charged"))
        }
        // Under --shadow every limit is a shadow limit: consumed when it passes, never blocking.
        let charges = shadowAll ? decision.charges.map { $0.asShadow } : decision.charges

        /// The store's answer for the call's limits, consuming them: admitted (with what it consumed), or the
        /// denial to answer with (refused, or the store failed under `--fail-mode closed`).
        enum Charge {
            case admitted(outcome: LimitOutcome?, callID: String)
            case refused(Enforcement)
        }
        func acquire() async -> Charge {
            let callID = Self.newCallID()
            guard !charges.isEmpty else { return .admitted(outcome: nil, callID: callID) }
            let outcome: LimitOutcome
            let storeStarted = ContinuousClock.now
            do {
                outcome = try await store.acquire(LimitRequest(callID: callID, charges: charges))
                metrics.storeOperation(.ok)
            } catch {
                metrics.storeOperation(error.code == .timeout ? .timeout : error.code == .notReplicated ? .notReplicated : .error)
                switch configuration.failMode {
                case .closed:
                    if let suppressed = storeFailureLog.admit() {
                        logger.error(
                            "limit store failed; denying (fail mode closed)",
                            metadata: ["error": "\(error)", "suppressedSinceLastLine": "\(suppressed)"])
                    }
                    return .refused(
                        deny(
                            ToolCallDenial(
                                reason: .storeUnavailable, rule: rule, message: "the rate-limit store is unavailable; try again in a second",
                                retryAfterSeconds: 1)))
                case .open:
                    if let suppressed = storeFailureLog.admit() {
                        logger.warning(
                            "limit store failed; allowing without limits (fail mode open)",
                            metadata: ["error": "\(error)", "suppressedSinceLastLine": "\(suppressed)"])
                    }
                    return .admitted(outcome: nil, callID: callID)
                }
            }
            metrics.storeDuration.recordInterval(since: storeStarted)
            guard outcome.admitted else {
                let denial = ToolCallDenial.rateLimited(charges: charges, outcome: outcome)
                    ?? ToolCallDenial(reason: .rateLimited, rule: rule, message: "rate limited")
                return .refused(deny(denial, quota: RateLimitHeaders.tightest(charges: decision.charges, outcome: outcome)))
            }
            return .admitted(outcome: outcome, callID: callID)
        }

        /// Consumes the limits and forwards the call. With `approvalID`, the approval is used up once the limits
        /// admit the call; nil when an identical call used it first (nothing then stays charged).
        func charge(usingApproval approvalID: String? = nil) async -> Enforcement? {
            let outcome: LimitOutcome?
            let callID: String
            switch await acquire() {
            case .refused(let denial): return denial
            case .admitted(let o, let id): (outcome, callID) = (o, id)
            }
            if let approvalID, !(await useApproval(approvalID)) {
                if let receipt = outcome?.receipt { await refund([receipt]) }
                return nil
            }
            guard let outcome else {
                if charges.isEmpty { return .forward(receipt: nil, call: call, audit: record(.allowed, approvalID: approvalID)) }
                return .forward(
                    receipt: nil, call: call, audit: record(
                        .allowedStoreUnavailable, reason: "the limit store failed; allowed without limits (fail mode open)",
                        detail: "store unavailable", approvalID: approvalID))
            }
            let failedShadow = zip(charges, outcome.results).first { $0.shadow && !$1.passed }?.0
            // The store's decision time (Redis TIME on Redis): what fleet-wide exactness is judged by.
            logger.debug(
                "tool call admitted",
                metadata: ["tool": "\(call.name)", "callID": "\(callID)", "decidedAtMicros": "\(outcome.decidedAtMicros)"])
            let audit: CallAudit?
            if let failedShadow {
                audit = record(
                    .shadowDenied, reason: ToolCallDenial.Reason.rateLimited.rawValue, detail: "limit \(failedShadow.counter)",
                    counter: failedShadow.counter, remaining: 0,
                    approvalID: approvalID)
            } else {
                // The limit with the least left, for the audit line only: no work for it without an audit log.
                let tightest =
                    auditLog == nil
                    ? nil : zip(charges, outcome.results).filter { !$0.0.shadow || shadowAll }.min { $0.1.remaining < $1.1.remaining }
                audit = record(.allowed, counter: tightest?.0.counter, remaining: tightest?.1.remaining, approvalID: approvalID)
            }
            let quota = RateLimitHeaders.tightest(charges: decision.charges, outcome: outcome)
            return .forward(receipt: outcome.receipt, quota: shadowAll ? nil : quota, call: call, audit: audit)
        }

        guard let approval else {
            // Without an approval to use, a charge always ends in an answer.
            return await charge() ?? deny(ToolCallDenial(reason: .rateLimited, rule: rule, message: "rate limited"))
        }

        // DESIGN.md section 6, "Bounds and display": a human cannot review more than this.
        let argumentBytes = CanonicalJSON.bytes(call.arguments).count
        guard argumentBytes <= approval.maxArgumentBytes else {
            return deny(
                ToolCallDenial(
                    reason: .invalidArguments, rule: rule,
                    message: "the arguments are \(argumentBytes) bytes; a human reviews at most \(approval.maxArgumentBytes) (approval.maxArgumentBytes)"),
                detail: "approval.maxArgumentBytes \(approval.maxArgumentBytes)")
        }
        let binding = ApprovalBinding(
            grant: exchange.identity.grant, server: configuration.serverName, tool: call.name, arguments: call.arguments,
            policySHA256: snapshot.policy.sha256, decidedBy: snapshot.policy.decidingDigest(forTool: call.name))
        let deadline = ContinuousClock.now + .seconds(approval.waitSeconds)
        var creation = ApprovalCreation.lookOnly
        var lastID: String?
        while true {
            let start: ApprovalStart
            do {
                start = try await approvals.store.start(
                    binding, newID: Approval.newID(for: binding), ttlSeconds: approval.ttlSeconds, creation: creation)
            } catch {
                // Never approved by default, whatever the fail mode: no human said yes.
                logger.error("approval store failed; denying", metadata: ["error": "\(error)"])
                return deny(
                    ToolCallDenial(
                        reason: .storeUnavailable, rule: rule, message: "the approval store is unavailable; try again in a second",
                        retryAfterSeconds: 1))
            }
            switch start {
            case .approved(let id):
                // Charged when it proceeds; if a limit refuses it now, the approval stays for a retry.
                if let answer = await charge(usingApproval: id) {
                    if case .forward = answer { logger.info("approved call proceeds", metadata: ["tool": "\(call.name)", "approvalId": "\(id)"]) }
                    return answer
                }
                creation = .lookOnly
                continue  // an identical call used it first: look again
            case .denied(let id):
                return deny(
                    ToolCallDenial(reason: .approvalDenied, rule: rule, message: "a human denied this call to \(call.name)", approvalID: id))
            case .absent:
                // Limits first: a call they would refuse is refused without asking a human (nothing stays charged).
                switch await acquire() {
                case .refused(let denial): return denial
                case .admitted(let outcome, _): if let receipt = outcome?.receipt { await refund([receipt]) }
                }
                creation = .create(maxPendingPerGrant: approval.maxPending)
                continue
            case .tooManyPending:
                logger.warning(
                    "approval request refused: the grant has its maximum of pending requests",
                    metadata: ["tool": "\(call.name)", "grant": "\(binding.grant)", "maxPending": "\(approval.maxPending)"])
                return deny(
                    ToolCallDenial(
                        reason: .approvalRequired, rule: rule,
                        message: "tool \(call.name) needs a human's approval, and \(approval.maxPending) calls of this agent already wait for one (approval.maxPending); retry once an approver has decided them"),
                    detail: "approval.maxPending \(approval.maxPending)")
            case .pending(let request):
                lastID = request.id
                if ContinuousClock.now < deadline {
                    logger.info(
                        "tool call waits for approval",
                        metadata: ["tool": "\(call.name)", "grant": "\(binding.grant)", "approvalId": "\(request.id)"])
                }
            }
            guard ContinuousClock.now < deadline, let id = lastID else { break }
            switch await approvals.wait(for: id, until: deadline, agent: exchange.agent) {
            case .approved, .gone:
                creation = .lookOnly
                continue  // use it (or, if an identical call used it first, look again)
            case .denied:
                return deny(
                    ToolCallDenial(reason: .approvalDenied, rule: rule, message: "a human denied this call to \(call.name)", approvalID: id))
            case .timedOut:
                break
            }
            break
        }
        return deny(
            ToolCallDenial(
                reason: .approvalRequired, rule: rule,
                message: "tool \(call.name) needs a human's approval: ask an approver to approve \(lastID ?? "it"), then retry the identical call",
                approvalID: lastID))
    }

    /// Uses up an approval once the call's limits admitted it; false when it is gone (an identical call used it
    /// first) or the store failed (then the call asks again and the store's failure decides).
    private func useApproval(_ id: String) async -> Bool {
        do {
            return try await approvals.store.consume(id: id)
        } catch {
            logger.error("approval store failed while using an approval", metadata: ["error": "\(error)", "approvalId": "\(id)"])
            return false
        }
    }

    /// Whether the call carries a `requestState` toolgate relayed to this grant for this tool and these arguments,
    /// not used yet; it is used up here. A store failure reads as "no": the call is then charged as a new one.
    private func isFollowUpRound(_ call: ToolCall, requestState: String, exchange: Exchange) async -> Bool {
        let binding = RoundBinding(
            grant: exchange.identity.grant, tool: call.name, arguments: call.arguments,
            decidedBy: decidedBy(exchange.snapshot.policy, call.name), requestState: requestState)
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
    /// `policy`: the one the first round was judged and charged by.
    func rememberRounds(_ rounds: [ResponseRelay.RelayedRound], grant: String, policy: Policy) async {
        for round in rounds {
            let binding = RoundBinding(
                grant: grant, tool: round.tool, arguments: round.arguments, decidedBy: decidedBy(policy, round.tool),
                requestState: round.requestState)
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

extension MCPProxy {
    /// What a multi-round state is bound to: the rules that decide the tool, and on a named server the server, so a
    /// state relayed for one server's tool never passes another server's.
    func decidedBy(_ policy: Policy, _ tool: String) -> String {
        let digest = policy.decidingDigest(forTool: tool)
        guard let server = configuration.serverName else { return digest }
        return "server:" + server + ":" + digest
    }
}
