import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

extension MCPProxy {
    /// Sends the request upstream and relays the answer through one `ResponseRelay`: streamed event by event
    /// for event streams and opaque bodies, read whole (bounded) for JSON, which must be filtered and judged.
    func forward(
        _ request: Request, method: UpstreamRequest.Method, body: [UInt8], identity: Identity, context: ForwardContext
    ) async -> Response {
        let upstreamRequest = UpstreamRequest(
            method: method, url: configuration.upstreamURL,
            headers: ProxyHeaders.upstream(from: request.headers, adding: configuration.upstreamHeaders), body: body,
            agent: context.agent, grant: identity.grant)
        let started = ContinuousClock.now
        let response: UpstreamResponse
        do {
            response = try await upstream.send(upstreamRequest)
        } catch {
            context.agent?.clearDeparture()
            metrics.upstreamRequest(.failed(error.code), server: configuration.serverName)
            if RefundRule.refunds(afterTransportFailure: error) { await refund(context.receipts) }
            for audit in context.audits {
                auditLog?.record(audit.line(upstreamStatus: nil, upstreamError: error.code.metricLabel))
            }
            if error.code == .cancelled {
                // The agent left: nothing about the upstream, nothing wrong.
                logger.debug("the agent left before the upstream answered", metadata: ["requestSent": "\(error.requestSent)"])
            } else {
                upstreamObservation.recordFailure(
                    status: error.code.metricLabel, reached: error.code != .unreachable, message: error.message)
                logger.warning("upstream failed", metadata: ["error": "\(error.message)", "requestSent": "\(error.requestSent)"])
            }
            return unreachableAnswer(error, context: context, format: ResponseFormat(accept: request.headers[.accept]))
        }
        metrics.upstreamDuration(server: configuration.serverName).recordInterval(since: started)
        metrics.upstreamRequest(.http(response.status), server: configuration.serverName)
        trackSession(request, method: method, response: response, identity: identity, context: context)

        var headers = ProxyHeaders.downstream(from: response.headers)
        if let retryAfter = context.retryAfter, headers[.retryAfter] == nil { headers[.retryAfter] = String(retryAfter) }
        context.quota?.apply(to: &headers)
        for audit in context.audits { auditLog?.record(audit.line(upstreamStatus: response.status)) }
        var relay = ResponseRelay(
            plan: context.plan, status: response.status, contentType: response.header("content-type"),
            filter: configuration.shadow ? Self.listsEverything : context.snapshot.toolListFilter,
            maximumJSONBytes: Self.maximumBufferedBody)
        if relay.mode != .notJSONRPC {
            upstreamObservation.record(status: String(response.status), speaksMCP: true)
        }
        if relay.mode == .json || relay.mode == .notJSONRPC {
            defer { context.agent?.clearDeparture() }
            let answer = await relayJSON(
                response, relay: &relay, headers: headers, receipts: context.receipts, grant: identity.grant,
                policy: context.snapshot.policy)
            noteTools(relay, policy: context.snapshot.policy, laterPage: context.listsALaterPage)
            return answer
        }
        let receipts = context.receipts
        let streaming = relay
        let agent = context.agent
        let laterPage = context.listsALaterPage
        let grant = identity.grant
        let policyInForce = context.snapshot.policy
        let body = response.body
        let token = inflight.beginStream(method == .get ? .listening : .work, cancel: { body.cancel() })
        return Response(status: HTTPResponse.Status(code: response.status), headers: headers, body: ResponseBody { writer in
            defer {
                agent?.clearDeparture()
                self.inflight.endStream(token)
            }
            try await self.stream(
                body, relay: streaming, receipts: receipts, grant: grant, policy: policyInForce, laterPage: laterPage, to: &writer)
        })
    }

    /// The upstream's whole tool list, when an answer carried it: the policy is held against it (once per policy).
    private func noteTools(_ relay: ResponseRelay, policy: Policy, laterPage: Bool) {
        guard let tools = relay.upstreamTools else { return }
        coverage.upstreamListed(tools, policy: policy, cursorPage: laterPage || relay.upstreamToolsContinue)
    }

    /// `--shadow` hides nothing from lists: the policy would have, which the log and metrics say per call.
    static let listsEverything = ToolListFilter(isListed: { _ in true })

    /// Event streams and opaque bodies go to the agent as they arrive.
    private func stream(
        _ body: any UpstreamBody, relay initial: ResponseRelay, receipts: [LimitReceipt], grant: String, policy: Policy,
        laterPage: Bool, to writer: inout any ResponseBodyWriter
    ) async throws {
        var relay = initial
        let first = relay.start()
        if !first.isEmpty { try await writer.write(ByteBuffer(bytes: first)) }
        var ending: ResponseRelay.Ending?
        var agentLeft = false
        while ending == nil {
            let chunk: [UInt8]?
            do {
                chunk = try await body.next()
            } catch {
                agentLeft = error.code == .cancelled
                ending = relay.fail(error.message)
                break
            }
            guard let chunk else { break }
            let out: [UInt8]
            do {
                out = try relay.receive(chunk)
            } catch {
                body.cancel()
                ending = relay.fail(Self.describe(error))
                break
            }
            // Remembered before the agent sees the state, so an instant follow-up is recognised.
            let rounds = relay.takeRelayedRounds()
            if !rounds.isEmpty { await rememberRounds(rounds, grant: grant, policy: policy) }
            guard !out.isEmpty else { continue }
            do {
                try await writer.write(ByteBuffer(bytes: out))
            } catch {
                // The agent went away: stop the upstream transfer too.
                body.cancel()
                throw error
            }
        }
        let end = ending ?? relay.finish()
        Self.report(end, relay: relay, agentLeft: agentLeft, logger: logger, metrics: metrics)
        noteTools(relay, policy: policy, laterPage: laterPage)
        if end.refund { await refund(receipts) }
        if !end.bytes.isEmpty { try await writer.write(ByteBuffer(bytes: end.bytes)) }
        if end.abort { throw RelayAborted() }
        try await writer.finish(nil)
    }

    /// A JSON answer is read whole before anything is sent, so it can be filtered, merged with toolgate's own
    /// answers, and judged for a refund; one that breaks on the way is aborted, never sent truncated.
    private func relayJSON(
        _ response: UpstreamResponse, relay: inout ResponseRelay, headers: HTTPFields, receipts: [LimitReceipt], grant: String,
        policy: Policy
    ) async -> Response {
        var ending: ResponseRelay.Ending?
        var agentLeft = false
        while ending == nil {
            do {
                guard let chunk = try await response.body.next() else { break }
                _ = try relay.receive(chunk)
            } catch let error as UpstreamError {
                agentLeft = error.code == .cancelled
                ending = relay.fail(error.message)
            } catch {
                response.body.cancel()
                ending = relay.fail(Self.describe(error))
            }
        }
        let end = ending ?? relay.finish()
        Self.report(end, relay: relay, agentLeft: agentLeft, logger: logger, metrics: metrics)
        if end.replacedNotJSONRPC {
            upstreamObservation.record(status: String(response.status), speaksMCP: false)
            metrics.upstreamAnswerNotJSONRPC(status: response.status, server: configuration.serverName)
            if let suppressed = notJSONRPCLog.admit() {
                logger.error(
                    "upstream answer is not JSON-RPC; the agent gets a JSON-RPC error instead",
                    metadata: [
                        "status": "\(response.status)", "contentType": "\(relay.contentType)", "upstream": "\(configuration.upstreamShownURL)",
                        "suppressedSinceLastLine": "\(suppressed)",
                    ])
            }
        }
        if end.refund { await refund(receipts) }
        let rounds = relay.takeRelayedRounds()
        if !rounds.isEmpty, !end.abort { await rememberRounds(rounds, grant: grant, policy: policy) }
        var headers = headers
        if let contentType = end.contentType { headers[.contentType] = contentType }
        let status = HTTPResponse.Status(code: end.status ?? response.status)
        if end.abort {
            return Response(status: status, headers: headers, body: ResponseBody { _ in throw RelayAborted() })
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: end.bytes)))
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case ResponseRelay.Failure.eventTooLarge(let limit): "upstream sent an event larger than \(limit) bytes"
        case ResponseRelay.Failure.bodyTooLarge(let limit): "upstream JSON answer larger than \(limit) bytes"
        default: "\(error)"
        }
    }

    /// `agentLeft`: the answer ended because the agent went away (an SDK closing its session does so after every
    /// step): normal, so only a debug line; the upstream did nothing wrong.
    private static func report(
        _ end: ResponseRelay.Ending, relay: ResponseRelay, agentLeft: Bool, logger: Logger, metrics: ToolgateMetrics
    ) {
        if agentLeft {
            logger.debug("the agent left before the upstream's answer ended; upstream transfer stopped")
        } else if let problem = end.problem {
            logger.warning("upstream answer broken", metadata: ["problem": "\(problem)", "aborted": "\(end.abort)"])
        }
        if relay.droppedEvents > 0 {
            logger.warning("dropped upstream events whose data is not JSON", metadata: ["count": "\(relay.droppedEvents)"])
            metrics.upstreamEventsDropped(relay.droppedEvents)
        }
    }

    /// Sessions `session` scope may count: issued by the upstream in an `initialize` answer relayed to this
    /// grant, forgotten when deleted.
    private func trackSession(
        _ request: Request, method: UpstreamRequest.Method, response: UpstreamResponse, identity: Identity, context: ForwardContext
    ) {
        guard (200..<300).contains(response.status) else { return }
        if context.initializes, let issued = response.header("mcp-session-id"), !issued.isEmpty {
            sessions.issued(grant: identity.grant, session: issued)
        } else if method == .delete, let session = request.headers[Self.sessionID] {
            sessions.ended(grant: identity.grant, session: session)
        }
    }

    /// Largest JSON body toolgate reads whole to filter or merge.
    static let maximumBufferedBody = 32 << 20

    /// HTTP 200 with a -32603 error for each forwarded request id, naming the upstream that failed.
    private func unreachableAnswer(_ error: UpstreamError, context: ForwardContext, format: ResponseFormat) -> Response {
        // Several servers: the agent is told which one failed.
        let message = configuration.serverName.map { "server \"\($0)\": " + error.message } ?? error.message
        let errors = context.plan.requestIDs.map { JSONRPCResponse.error(id: $0, code: .internalError, message: message) }
        let all = errors + context.plan.localAnswers
        if all.isEmpty { return Self.httpError(.badGateway, .internalError, message) }
        let single = context.plan.localAnswers.isEmpty && errors.count == 1
        return Self.answer(single ? all[0] : .array(all), format: format, retryAfter: context.retryAfter)
    }

    func refund(_ receipts: [LimitReceipt]) async {
        for receipt in receipts {
            do {
                try await store.refund(receipt)
            } catch {
                logger.error("refund failed", metadata: ["callID": "\(receipt.callID)", "error": "\(error)"])
            }
        }
    }
}

/// Ends an agent's response with a transport error, so a broken upstream answer never looks complete.
struct RelayAborted: Error {}

extension UpstreamError.Code {
    var metricLabel: String {
        switch self {
        case .unreachable: "unreachable"
        case .headersTimeout: "headers_timeout"
        case .idleTimeout: "idle_timeout"
        case .transport: "transport_error"
        case .cancelled: "cancelled"
        }
    }
}
