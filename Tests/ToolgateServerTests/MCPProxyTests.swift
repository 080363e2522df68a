import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MetricsTestKit
import Synchronization
import NIOCore
import Testing
import ToolgateCore
@testable import ToolgateServer

@Suite struct MCPProxyTests {
    static let policyText = #"""
        {"version":"1","default":"deny","hide":["secret_*"],"tools":{
          "imageBackgroundRemoval":{"limits":[{"counter":"rate","window":"minute","max":1}]},
          "echo":{},
          "shell_exec":{"action":"deny","reason":"no shells"}}}
        """#

    static func app(
        _ upstream: FakeUpstream, store: any LimitStore = InMemoryLimitStore(clock: SystemWallClock()),
        storeStatus: any StoreStatus = MemoryStoreStatus(), policy policyText: String = policyText,
        recorded: TestMetrics? = nil, auditLog: AuditLog? = nil, readiness: ToolgateServer.Readiness = .init(),
        configure: (inout ServerConfiguration) -> Void = { _ in }
    ) throws -> (some ApplicationProtocol, ToolgateMetrics) {
        let policy = try Policy.parse(policyText, file: "policy.json")
        var configuration = ServerConfiguration(upstreamURL: "http://upstream.test/mcp", agentID: "test-host")
        configure(&configuration)
        let metrics = ToolgateMetrics(version: "test", factory: recorded)
        let app = ToolgateServer.makeApplication(
            configuration: configuration, policy: PolicyState(policy: policy, keyPrefix: "tg"),
            store: store, storeStatus: storeStatus, upstream: upstream, metrics: metrics,
            readiness: readiness, logger: Logger(label: "test"), auditLog: auditLog)
        return (app, metrics)
    }

    /// A counter's total, read back through swift-metrics' test factory.
    static func total(_ recorded: TestMetrics, _ name: MetricName, _ dimensions: [(String, String)] = []) -> Int64 {
        recorded.counterTotal(label: name.rawValue, dimensions: dimensions)
    }

    static func call(_ id: Int, _ name: String) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(name)","arguments":{}}}"#
    }

    /// The response body as JSON; `null` when it is not JSON, which every expectation on it then fails.
    static func json(_ response: TestResponse) -> JSONValue {
        (try? JSONParser.parse(Array(response.body.readableBytesView))) ?? .null
    }

    static let jsonHeaders: HTTPFields = [.contentType: "application/json", .accept: "application/json, text/event-stream"]

    static func okResult(_ request: UpstreamRequest) -> UpstreamResponse {
        let id = (try? JSONParser.parse(request.body))?["id"].map(JSONWriter.string) ?? "null"
        return FakeUpstream.response(200, contentType: "application/json", chunks: [#"{"jsonrpc":"2.0","id":\#(id),"result":{"content":[]}}"#])
    }

    /// An upstream can run the tool and then fail (or be made to, by the agent deleting its session mid-call):
    /// a 5xx keeps the charge.
    @Test func upstream5xxKeepsTheCharge() async throws {
        let upstream = FakeUpstream { _ in FakeUpstream.response(500, contentType: "application/json", chunks: [#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}"#]) }
        let (app, _) = try Self.app(upstream)
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(1, "imageBackgroundRemoval"))) { response in
                #expect(response.status == .internalServerError)
            }
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(2, "imageBackgroundRemoval"))) { response in
                let denial = Self.json(response)["result"]?["_meta"]?["toolgate/denial"]
                #expect(denial?["reason"] == "rate_limited")
                #expect(response.headers[.retryAfter] != nil)
            }
        }
        #expect(upstream.requests.count == 1)
    }

    /// Refused up front (HTTP 4xx with a request-validation error): the tool never ran, so the charge comes back.
    /// A 4xx that is not such an error keeps it.
    @Test(arguments: [
        (400, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params"}}"#, true),
        (400, #"{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"Mcp-Name header mismatch"}}"#, true),
        (400, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal"}}"#, false),
        (404, "not found", false),
        (409, #"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, false),
    ])
    func onlyAnUpFrontRefusalRefunds(status: Int, body: String, refunds: Bool) async throws {
        let first = Mutex(true)
        let upstream = FakeUpstream { request in
            let refuse = first.withLock { f in defer { f = false }; return f }
            return refuse ? FakeUpstream.response(status, contentType: body.hasPrefix("{") ? "application/json" : "text/plain", chunks: [body]) : MCPProxyTests.okResult(request)
        }
        let (app, _) = try Self.app(upstream)
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(1, "imageBackgroundRemoval"))) { response in
                if body.hasPrefix("{") {
                    #expect(response.status.code == status)
                } else {
                    // Not JSON-RPC: a JSON-RPC error for the request, naming the upstream's status.
                    #expect(response.status == .ok)
                    #expect(Self.json(response)["error"]?["message"]?.stringValue?.contains("HTTP \(status)") == true)
                }
            }
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(2, "imageBackgroundRemoval"))) { response in
                let denial = Self.json(response)["result"]?["_meta"]?["toolgate/denial"]
                #expect((denial == nil) == refunds, "status \(status): \(body)")
            }
        }
    }

    @Test func unreachableUpstreamAnswersMinus32603AndRefunds() async throws {
        let reachable = Mutex(false)
        let upstream = FakeUpstream { request throws(UpstreamError) in
            guard reachable.withLock({ $0 }) else {
                throw UpstreamError(
                    code: .unreachable, message: "upstream http://upstream.test/mcp unreachable: Connection refused", requestSent: false)
            }
            return MCPProxyTests.okResult(request)
        }
        let recorded = TestMetrics()
        let (app, _) = try Self.app(upstream, recorded: recorded)
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(7, "imageBackgroundRemoval"))) { response in
                #expect(response.status == .ok)
                let body = Self.json(response)
                #expect(body["id"] == 7)
                #expect(body["error"]?["code"] == .number(JSONNumber(-32603)))
                #expect(body["error"]?["message"]?.stringValue?.contains("http://upstream.test/mcp") == true)
            }
            reachable.withLock { $0 = true }
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(8, "imageBackgroundRemoval"))) { response in
                #expect(Self.json(response)["result"]?["content"] == [])
            }
        }
        #expect(Self.total(recorded, .upstreamRequests, [("status", "unreachable")]) == 1)
        #expect(Self.total(recorded, .upstreamRequests, [("status", "200")]) == 1)
    }

    @Test func eventStreamToolListsAreFilteredEventByEvent() async throws {
        let list = #"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo"},{"name":"secret_dump"},{"name":"shell_exec"},{"name":"unlisted"}]}}"#
        let stream = "id: e1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"
            + "id: e2\nevent: message\ndata: \(list)\n\n"
        let bytes = Array(stream.utf8)
        // Split the stream into awkward chunks, including inside the event being rewritten.
        let chunks = stride(from: 0, to: bytes.count, by: 7).map { String(decoding: bytes[$0..<min($0 + 7, bytes.count)], as: UTF8.self) }
        let upstream = FakeUpstream { _ in FakeUpstream.response(200, contentType: "text/event-stream", chunks: chunks) }
        let (app, _) = try Self.app(upstream)
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/mcp", method: .post, headers: Self.jsonHeaders,
                body: ByteBuffer(string: #"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#)
            ) { response in
                let text = String(buffer: response.body)
                #expect(text.hasPrefix("id: e1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"))
                #expect(text.contains("id: e2\n"))
                #expect(text.contains(#"{"tools":[{"name":"echo"},{"name":"shell_exec"}]}"#))
                #expect(!text.contains("secret_dump"))
                #expect(!text.contains("unlisted"))
            }
        }
    }

    @Test func batchesMergeLocalAnswersWithTheUpstreams() async throws {
        let upstream = FakeUpstream { request in
            let elements = (try? JSONParser.parse(request.body))?.arrayValue ?? []
            let answers = elements.compactMap { $0["id"] }.map { id in #"{"jsonrpc":"2.0","id":\#(JSONWriter.string(id)),"result":{"content":[]}}"# }
            return FakeUpstream.response(200, contentType: "application/json", chunks: ["[" + answers.joined(separator: ",") + "]"])
        }
        let (app, _) = try Self.app(upstream)
        let batch = "[\(Self.call(1, "echo")),\(Self.call(2, "shell_exec")),\(Self.call(3, "nope")),{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}]"
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: batch)) { response in
                let answers = Self.json(response).arrayValue ?? []
                #expect(Set(answers.compactMap { $0["id"].map(JSONWriter.string) }) == ["1", "2", "3"])
                let byID = Dictionary(uniqueKeysWithValues: answers.map { (JSONWriter.string($0["id"]!), $0) })
                #expect(byID["2"]?["result"]?["_meta"]?["toolgate/denial"]?["reason"] == "denied")
                #expect(byID["3"]?["error"]?["message"] == "Unknown tool: nope")
            }
        }
        // Only the allowed call and the notification went upstream.
        let forwarded = try JSONParser.parse(upstream.requests[0].body).arrayValue ?? []
        #expect(forwarded.count == 2)
        #expect(forwarded[0]["id"] == 1)
    }

    @Test func agentCredentialsStayBehindAndConfiguredHeadersAreAdded() async throws {
        let upstream = FakeUpstream { request in MCPProxyTests.okResult(request) }
        let (app, _) = try Self.app(upstream) { $0.upstreamHeaders = [HTTPHeader("X-Upstream-Key", "k-123")] }
        var headerFields = Self.jsonHeaders
        headerFields[.authorization] = "Bearer agent-secret"
        headerFields[.acceptEncoding] = "gzip"
        headerFields[HTTPField.Name("Mcp-Session-Id")!] = "s-1"
        let headers = headerFields
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: headers, body: ByteBuffer(string: Self.call(1, "echo"))) { response in
                #expect(response.status == .ok)
            }
        }
        let sent = try #require(upstream.requests.first)
        let names = sent.headers.map { $0.name.lowercased() }
        #expect(!names.contains("authorization"))
        #expect(!names.contains("accept-encoding"))
        #expect(sent.headers.contains(HTTPHeader("X-Upstream-Key", "k-123")))
        #expect(sent.headers.contains { $0.name.lowercased() == "mcp-session-id" && $0.value == "s-1" })
        #expect(sent.body == Array(Self.call(1, "echo").utf8))
    }

    @Test func refusalsCarryJSONRPCErrorBodies() async throws {
        let upstream = FakeUpstream { request in MCPProxyTests.okResult(request) }
        let (app, _) = try Self.app(upstream) { $0.maxBodyBytes = 64 }
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: "{\"jsonrpc\":")) { response in
                #expect(response.status == .badRequest)
                let body = Self.json(response)
                #expect(body["id"] == .null)
                #expect(body["error"]?["code"] == .number(JSONNumber(-32700)))
            }
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: String(repeating: " ", count: 65))) { response in
                #expect(response.status == .contentTooLarge)
                #expect(Self.json(response)["error"]?["code"] == .number(JSONNumber(-32600)))
            }
        }
        #expect(upstream.requests.isEmpty)
    }

    @Test(arguments: FailMode.allCases)
    func anUnavailableStoreFollowsTheFailMode(mode: FailMode) async throws {
        let upstream = FakeUpstream { request in MCPProxyTests.okResult(request) }
        let recorded = TestMetrics()
        let (app, _) = try Self.app(upstream, store: UnavailableStore(), storeStatus: DisconnectedStore(), recorded: recorded) {
            $0.failMode = mode
        }
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: Self.call(1, "imageBackgroundRemoval"))) { response in
                let result = Self.json(response)["result"]
                switch mode {
                case .closed: #expect(result?["_meta"]?["toolgate/denial"]?["reason"] == "store_unavailable")
                case .open: #expect(result?["content"] == [])
                }
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                let body = Self.json(response)
                #expect(body["store"]?["connected"] == false)
                switch mode {
                case .closed:
                    #expect(response.status == .serviceUnavailable)
                    #expect(body["status"] == "not_ready")
                case .open:
                    #expect(response.status == .ok)
                    #expect(body["status"] == "degraded")
                }
            }
        }
        #expect(upstream.requests.count == (mode == .open ? 1 : 0))
        #expect(Self.total(recorded, .storeOperations, [("result", "timeout")]) == 1)
        // A fail-open admission is counted on its own, never as plain "allowed": limits were off.
        let decision = mode == .open ? "allowed_store_unavailable" : "store_unavailable"
        #expect(Self.total(recorded, .toolCalls, [("tool", "imageBackgroundRemoval"), ("decision", decision)]) == 1)
        #expect(Self.total(recorded, .toolCalls, [("tool", "imageBackgroundRemoval"), ("decision", "allowed")]) == 0)
    }

    /// A Redis that answers PING but refuses every script (full, under `noeviction`) is as good as down: the probe
    /// follows the fail mode and says why.
    @Test(arguments: FailMode.allCases)
    func aStoreProblemMakesTheProbeFollowTheFailModeAndSayWhy(mode: FailMode) async throws {
        let upstream = FakeUpstream { request in MCPProxyTests.okResult(request) }
        let (app, _) = try Self.app(upstream, storeStatus: RefusingStore()) { $0.failMode = mode }
        try await app.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                let body = Self.json(response)
                #expect(body["store"]?["connected"] == true)
                #expect(body["store"]?["problem"] == .string(RefusingStore.why))
                #expect(response.status == (mode == .closed ? .serviceUnavailable : .ok))
                #expect(body["status"] == (mode == .closed ? "not_ready" : "degraded"))
            }
        }
        let (healthy, _) = try Self.app(upstream) { $0.failMode = mode }
        try await healthy.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(Self.json(response)["store"]?["problem"] == nil)
                #expect(Self.json(response)["status"] == "ready")
            }
        }
    }
}

/// A store that never answers in time, as a stopped Redis would.
struct UnavailableStore: LimitStore {
    func acquire(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome {
        throw LimitStoreError(code: .timeout, message: "redis: no reply within 100 ms")
    }

    func refund(_ receipt: LimitReceipt) async throws(LimitStoreError) -> Bool {
        throw LimitStoreError(code: .timeout, message: "redis: no reply within 100 ms")
    }
}

struct DisconnectedStore: StoreStatus {
    var kind: String { "redis" }
    var isConnected: Bool { false }
    var warnings: [String] { [] }
}

struct RefusingStore: StoreStatus {
    static let why = "Redis answered a limit script with an error 2 s ago: OOM command not allowed when used memory > 'maxmemory'."
    var kind: String { "redis" }
    var isConnected: Bool { true }
    var warnings: [String] { [] }
    var problem: String? { Self.why }
}
