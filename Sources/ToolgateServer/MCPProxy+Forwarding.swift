import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

extension MCPProxy {
    /// Sends the request upstream and relays the answer, streamed as it arrives.
    func forward(_ request: Request, method: UpstreamRequest.Method, body: [UInt8], context: ForwardContext) async -> Response {
        let upstreamRequest = UpstreamRequest(
            method: method, url: configuration.upstreamURL,
            headers: ProxyHeaders.upstream(from: request.headers, adding: configuration.upstreamHeaders), body: body)
        let started = ContinuousClock.now
        let response: UpstreamResponse
        do {
            response = try await upstream.send(upstreamRequest)
        } catch {
            metrics.upstreamRequest(status: error.code.metricLabel)
            await refund(context.callIDs)
            logger.warning("upstream failed", metadata: ["error": "\(error.message)"])
            return unreachableAnswer(error, context: context, format: ResponseFormat(accept: request.headers[.accept]))
        }
        metrics.upstreamDuration.recordInterval(since: started)
        metrics.upstreamRequest(status: String(response.status))
        if response.status >= 500 { await refund(context.callIDs) }

        let status = HTTPResponse.Status(code: response.status)
        var headers = ProxyHeaders.downstream(from: response.headers)
        if let retryAfter = context.retryAfter, headers[.retryAfter] == nil { headers[.retryAfter] = String(retryAfter) }
        let contentType = response.header("content-type")?.lowercased() ?? ""
        let isEventStream = contentType.hasPrefix("text/event-stream")
        let filter = policy.snapshot.toolListFilter
        let logger = self.logger

        if !context.localAnswers.isEmpty, !isEventStream {
            return await mergedJSON(response, localAnswers: context.localAnswers, context: context, headers: headers)
        }
        if isEventStream, !context.toolListIDs.isEmpty || !context.localAnswers.isEmpty {
            let listIDs = context.toolListIDs
            let localAnswers = context.localAnswers
            return Response(status: status, headers: headers, body: ResponseBody { writer in
                if !localAnswers.isEmpty {
                    try await writer.write(ByteBuffer(bytes: SSEEvent.message(.array(localAnswers)).encoded()))
                }
                var parser = SSEParser()
                try await Self.relay(response.body, logger: logger) { chunk in
                    var out: [UInt8] = []
                    do {
                        for event in try parser.feed(chunk) {
                            out += Self.filtered(event, filter: filter, listIDs: listIDs).encoded()
                        }
                    } catch {
                        logger.error("upstream event larger than \(parser.maximumEventBytes) bytes; stream cut")
                        throw UpstreamError(code: .transport, message: "upstream sent an oversized event")
                    }
                    if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                }
                let rest = parser.pendingBytes
                if !rest.isEmpty { try await writer.write(ByteBuffer(bytes: rest)) }
                try await writer.finish(nil)
            })
        }
        if !context.toolListIDs.isEmpty, contentType.hasPrefix("application/json") {
            return await filteredJSON(response, filter: filter, listIDs: context.toolListIDs, status: status, headers: headers)
        }
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            try await Self.relay(response.body, logger: logger) { chunk in try await writer.write(ByteBuffer(bytes: chunk)) }
            try await writer.finish(nil)
        })
    }

    /// Copies the upstream body to `write` chunk by chunk. A broken upstream ends the body where it broke
    /// (the headers are already sent); a broken agent connection cancels the upstream transfer.
    static func relay(
        _ body: any UpstreamBody, logger: Logger, _ write: ([UInt8]) async throws -> Void
    ) async throws {
        while true {
            let chunk: [UInt8]?
            do {
                chunk = try await body.next()
            } catch {
                logger.warning("upstream body ended early", metadata: ["error": "\(error.message)"])
                return
            }
            guard let chunk else { return }
            do {
                try await write(chunk)
            } catch {
                body.cancel()
                throw error
            }
        }
    }

    static func filtered(_ event: SSEEvent, filter: ToolListFilter, listIDs: [JSONValue]) -> SSEEvent {
        guard !event.data.isEmpty, let message = try? JSONParser.parse(event.data),
            let changed = filter.filter(body: message, listRequestIDs: listIDs)
        else { return event }
        var rewritten = event
        rewritten.data = JSONWriter.string(changed)
        rewritten.raw = []
        return rewritten
    }

    /// Largest JSON body toolgate reads whole to filter or merge.
    static let maximumBufferedBody = 32 << 20

    private func collect(_ body: any UpstreamBody) async throws(UpstreamError) -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await body.next() {
            bytes += chunk
            if bytes.count > Self.maximumBufferedBody {
                body.cancel()
                throw UpstreamError(code: .transport, message: "upstream response larger than \(Self.maximumBufferedBody) bytes")
            }
        }
        return bytes
    }

    private func filteredJSON(
        _ response: UpstreamResponse, filter: ToolListFilter, listIDs: [JSONValue], status: HTTPResponse.Status, headers: HTTPFields
    ) async -> Response {
        let bytes: [UInt8]
        do {
            bytes = try await collect(response.body)
        } catch {
            return failedRead(error, ids: listIDs)
        }
        var out = bytes
        if let value = try? JSONParser.parse(bytes), let changed = filter.filter(body: value, listRequestIDs: listIDs) {
            out = JSONWriter.bytes(changed)
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
    }

    /// A batch answered partly by toolgate: the upstream's JSON answers plus toolgate's, in one array.
    private func mergedJSON(
        _ response: UpstreamResponse, localAnswers: [JSONValue], context: ForwardContext, headers: HTTPFields
    ) async -> Response {
        var headers = headers
        let bytes: [UInt8]
        do {
            bytes = try await collect(response.body)
        } catch {
            return failedRead(error, ids: context.requestIDs, localAnswers: localAnswers)
        }
        var merged: [JSONValue] = []
        if !bytes.isEmpty {
            switch try? JSONParser.parse(bytes) {
            case .array(let elements)?: merged = elements
            case let value?: merged = [value]
            case nil:
                logger.warning("upstream answered a batch with a body that is not JSON; dropping it")
            }
        }
        if let filtered = context.toolListIDs.isEmpty ? nil : policy.snapshot.toolListFilter.filter(
            body: .array(merged), listRequestIDs: context.toolListIDs), case .array(let elements) = filtered
        {
            merged = elements
        }
        merged += localAnswers
        headers[.contentType] = "application/json"
        // Notifications alone get 202 with no body; toolgate's answers make it a 200.
        let status: HTTPResponse.Status = response.status == 202 ? .ok : HTTPResponse.Status(code: response.status)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(.array(merged)))))
    }

    private func failedRead(_ error: UpstreamError, ids: [JSONValue], localAnswers: [JSONValue] = []) -> Response {
        logger.warning("upstream body failed", metadata: ["error": "\(error.message)"])
        let errors = ids.map { JSONRPCResponse.error(id: $0, code: .internalError, message: error.message) }
        let all = errors + localAnswers
        return Self.jsonResponse(status: .ok, all.count == 1 ? all[0] : .array(all))
    }

    /// HTTP 200 with a -32603 error for each forwarded request id, naming the upstream that failed.
    private func unreachableAnswer(_ error: UpstreamError, context: ForwardContext, format: ResponseFormat) -> Response {
        let errors = context.requestIDs.map { JSONRPCResponse.error(id: $0, code: .internalError, message: error.message) }
        let all = errors + context.localAnswers
        if all.isEmpty { return Self.httpError(.badGateway, .internalError, error.message) }
        let single = context.localAnswers.isEmpty && errors.count == 1
        return Self.answer(single ? all[0] : .array(all), format: format, retryAfter: context.retryAfter)
    }

    func refund(_ callIDs: [String]) async {
        for callID in callIDs {
            do {
                try await store.refund(callID: callID)
            } catch {
                logger.error("refund failed", metadata: ["callID": "\(callID)", "error": "\(error)"])
            }
        }
    }
}

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
