import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import ToolgateCore
@testable import ToolgateServer

/// The holes of the proxy path, each shut: nothing reaches the agent or the upstream by a route the policy
/// did not anticipate.
@Suite struct ProxyPathTests {
    typealias P = MCPProxyTests
    static let sessionID = HTTPField.Name("Mcp-Session-Id")!

    static func post(_ client: some TestClientProtocol, _ body: String, headers: HTTPFields = P.jsonHeaders) async throws -> TestResponse {
        try await client.execute(uri: "/mcp", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    @Test func aToolCallWithoutAnIDIsNeverForwarded() async throws {
        let upstream = FakeUpstream { request in
            let elements = (try? JSONParser.parse(request.body))?.arrayValue ?? []
            let answers = elements.compactMap { $0["id"] }.map { #"{"jsonrpc":"2.0","id":\#(JSONWriter.string($0)),"result":{}}"# }
            return FakeUpstream.response(200, contentType: "application/json", chunks: ["[" + answers.joined(separator: ",") + "]"])
        }
        let (app, _) = try P.app(upstream)
        let notification = #"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"secret_dump","arguments":{}}}"#
        try await app.test(.router) { client in
            let alone = try await Self.post(client, notification)
            #expect(alone.status == .badRequest)
            #expect(P.json(alone)["error"]?["code"] == -32600)
            #expect(P.json(alone)["id"] == .null)
            let batch = try await Self.post(client, "[\(notification),{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]")
            #expect(batch.status == .ok)
            let answers = P.json(batch).arrayValue ?? []
            #expect(answers.count == 2)
            #expect(answers.contains { $0["id"] == .null && $0["error"]?["code"] == -32600 })
            #expect(answers.contains { $0["id"] == 1 })
        }
        #expect(upstream.requests.count == 1)
        #expect(!String(decoding: upstream.requests[0].body, as: UTF8.self).contains("tools/call"))
    }

    @Test func aRepeatedSessionHeaderIsRefused() async throws {
        let upstream = FakeUpstream { request in P.okResult(request) }
        let (app, _) = try P.app(upstream)
        var twice = P.jsonHeaders
        twice.append(HTTPField(name: Self.sessionID, value: "a"))
        twice.append(HTTPField(name: Self.sessionID, value: "b"))
        let headers = twice
        try await app.test(.router) { client in
            let response = try await Self.post(client, P.call(1, "echo"), headers: headers)
            #expect(response.status == .badRequest)
            #expect(P.json(response)["error"]?["code"] == -32600)
        }
        #expect(upstream.requests.isEmpty)
    }

    static let sessionPolicy = #"""
        {"version":"1","default":"deny","tools":{"echo":{"limits":[{"counter":"per_session","window":"minute","max":2,"scope":"session"}]}}}
        """#

    /// Only ids the upstream issued in an `initialize` answer count as sessions; made-up ids share the grant's
    /// counter, and the denial says the grant scope applied.
    @Test func sessionScopeCountsOnlySessionsTheUpstreamIssued() async throws {
        let issued = Mutex(0)
        let upstream = FakeUpstream { request in
            let body = (try? JSONParser.parse(request.body)) ?? .null
            if body["method"] == "initialize" {
                let n = issued.withLock { n in n += 1; return n }
                return FakeUpstream.response(
                    200, contentType: "application/json", chunks: [#"{"jsonrpc":"2.0","id":0,"result":{}}"#],
                    headers: [HTTPHeader("Mcp-Session-Id", "issued-\(n)")])
            }
            return P.okResult(request)
        }
        let (app, _) = try P.app(upstream, policy: Self.sessionPolicy)
        @Sendable func headers(_ session: String) -> HTTPFields {
            var h = P.jsonHeaders
            h[Self.sessionID] = session
            return h
        }
        @Sendable func denial(_ r: TestResponse) -> JSONValue? { P.json(r)["result"]?["_meta"]?["toolgate/denial"] }
        try await app.test(.router) { client in
            // Made-up ids: ten of them, two calls pass in all.
            var passed = 0
            for i in 0..<10 {
                let r = try await Self.post(client, P.call(i, "echo"), headers: headers("made-up-\(i)"))
                if let d = denial(r) { #expect(d["scope"] == "grant") } else { passed += 1 }
            }
            #expect(passed == 2)
            // An issued session gets its own two, and the denial names the session scope.
            _ = try await Self.post(client, #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#)
            for i in 0..<2 { #expect(denial(try await Self.post(client, P.call(20 + i, "echo"), headers: headers("issued-1"))) == nil) }
            #expect(denial(try await Self.post(client, P.call(30, "echo"), headers: headers("issued-1")))?["scope"] == "session")
        }
    }

    @Test func toolListsAreFilteredWhateverTheirIDAndPath() async throws {
        let hidden = #"{"jsonrpc":"2.0","id":"5","result":{"tools":[{"name":"echo"},{"name":"secret_dump"}]}}"#
        let upstream = FakeUpstream { request in
            request.method == .get
                ? FakeUpstream.response(200, contentType: "text/event-stream", chunks: ["data: \(hidden)\n\n", "data: oops {\"name\":\"secret_x\"}\n\n"])
                : FakeUpstream.response(200, contentType: "application/json", chunks: [hidden])
        }
        let (app, _) = try P.app(upstream)
        try await app.test(.router) { client in
            let list = try await Self.post(client, #"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#)
            #expect(P.json(list)["result"]?["tools"] == [["name": "echo"]])
            // Even an answer to something else that carries a tool list.
            let ping = try await Self.post(client, #"{"jsonrpc":"2.0","id":6,"method":"ping"}"#)
            #expect(!String(buffer: ping.body).contains("secret"))
            let stream = try await client.execute(uri: "/mcp", method: .get, headers: [.accept: "text/event-stream"])
            let text = String(buffer: stream.body)
            #expect(text.contains(#""name":"echo""#))
            #expect(!text.contains("secret"))
        }
    }

    @Test func aToolListAnswerThatDoesNotParseBecomesAnError() async throws {
        let upstream = FakeUpstream { _ in
            FakeUpstream.response(200, contentType: "application/json", chunks: [#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"secret_dump"},"#])
        }
        let (app, _) = try P.app(upstream)
        try await app.test(.router) { client in
            let r = try await Self.post(client, #"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#)
            #expect(P.json(r)["error"]?["code"] == -32603)
            #expect(P.json(r)["id"] == 5)
            #expect(!String(buffer: r.body).contains("secret"))
        }
    }

    @Test func aStreamThatBreaksBeforeTheAnswerEndsWithAnErrorEvent() async throws {
        let upstream = FakeUpstream { _ in
            UpstreamResponse(
                status: 200, headers: [HTTPHeader("Content-Type", "text/event-stream")],
                body: FailingBody(chunks: [Array("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n".utf8)]))
        }
        let (app, _) = try P.app(upstream)
        try await app.test(.router) { client in
            let r = try await Self.post(client, P.call(3, "echo"))
            let text = String(buffer: r.body)
            #expect(text.contains("notifications/progress"))
            #expect(text.contains(#""id":3"#))
            #expect(text.contains("upstream stream ended before the answer"))
        }
    }

    @Test func otherMethodsOnMCPAre405WithAJSONRPCBody() async throws {
        let (app, _) = try P.app(FakeUpstream { request in P.okResult(request) })
        try await app.test(.router) { client in
            for method in [HTTPRequest.Method.put, .patch] {
                let r = try await client.execute(uri: "/mcp", method: method, headers: P.jsonHeaders, body: ByteBuffer(string: "{}"))
                #expect(r.status == .methodNotAllowed)
                #expect(P.json(r)["error"]?["code"] == -32600)
            }
        }
    }
}

/// A body that delivers its chunks and then breaks, as a reset connection does.
final class FailingBody: UpstreamBody {
    private let chunks: Mutex<[[UInt8]]>

    init(chunks: [[UInt8]]) { self.chunks = Mutex(chunks) }

    func next() async throws(UpstreamError) -> [UInt8]? {
        if let chunk = chunks.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return chunk }
        throw UpstreamError(code: .transport, message: "upstream transport error: connection reset")
    }

    func cancel() {}
}
