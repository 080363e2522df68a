import Testing
import Crypto
@testable import ToolgateCore

@Suite struct JSONRPCBodyTests {
    @Test func singleRequestsNotificationsAndResponses() throws {
        guard case .single(let request) = try JSONRPCBody.parse(Array(#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"n":1}}}"#.utf8)) else {
            Issue.record("expected a single message")
            return
        }
        #expect(request.kind == .request(method: "tools/call"))
        #expect(request.id == "a")
        let call = try request.toolCall()
        #expect(call.name == "x")
        #expect(call.arguments == ["n": 1])
        guard case .single(let note) = try JSONRPCBody.parse(Array(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8)) else { return }
        #expect(note.kind == .notification(method: "notifications/initialized"))
        guard case .single(let response) = try JSONRPCBody.parse(Array(#"{"jsonrpc":"2.0","id":5,"result":{}}"#.utf8)) else { return }
        #expect(response.kind == .response)
    }

    @Test func batchesKeepTheirOrder() throws {
        guard case .batch(let messages) = try JSONRPCBody.parse(Array(#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#.utf8)) else {
            Issue.record("expected a batch")
            return
        }
        #expect(messages.map(\.method) == ["a", "b"])
    }

    @Test(arguments: [
        ("{not json", JSONRPCErrorCode.parseError),
        ("[]", .invalidRequest),
        ("42", .invalidRequest),
        (#"{"id":1,"method":"x"}"#, .invalidRequest),
        (#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":{},"method":"x"}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1,"method":7}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#, .invalidRequest),
        (#"{"jsonrpc":"2.0","id":1}"#, .invalidRequest),
        (#"[{"jsonrpc":"2.0","id":1,"method":"x"},5]"#, .invalidRequest),
    ])
    func malformedBodiesGetTheRightCode(body: String, code: JSONRPCErrorCode) {
        do {
            _ = try JSONRPCBody.parse(Array(body.utf8))
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.code == code, "\(body): \(error.message)")
        }
    }

    @Test func toolCallParamsAreChecked() throws {
        for params in [#"{"arguments":{}}"#, #"{"name":3}"#, #"{"name":"x","arguments":[1]}"#] {
            guard case .single(let m) = try JSONRPCBody.parse(Array(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":\#(params)}"#.utf8)) else { continue }
            #expect(throws: JSONRPCFailure.self) { try m.toolCall() }
        }
    }
}

@Suite struct ToolCallDenialTests {
    static let minute = Window(seconds: 60, text: "minute")

    @Test func rateLimitReportsTheLimitWithTheLongestRetry() throws {
        let charges = [
            LimitCharge(key: "a", counter: "short", rule: "t", scope: .grant, window: Self.minute, max: 10, algorithm: .sliding, cost: 1),
            LimitCharge(key: "b", counter: "long", rule: "*", scope: .global, window: Window(seconds: 3600, text: "1h"), max: 500, algorithm: .sliding, cost: 1),
            LimitCharge(key: "c", counter: "shadowed", rule: "t", scope: .grant, window: Self.minute, max: 1, algorithm: .sliding, cost: 1, shadow: true),
        ]
        let outcome = LimitOutcome(
            admitted: false,
            results: [
                LimitResult(passed: false, remaining: 0, retryAfterMicros: 1_500_000),
                LimitResult(passed: false, remaining: 0, retryAfterMicros: 90_000_001),
                LimitResult(passed: false, remaining: 0, retryAfterMicros: 999_000_000),
            ], decidedAtMicros: 0)
        let denial = try #require(ToolCallDenial.rateLimited(charges: charges, outcome: outcome))
        #expect(denial.rule == "*")
        #expect(denial.limit?.counter == "long")
        #expect(denial.retryAfterSeconds == 91)
    }

    @Test func resultFollowsTheContract() throws {
        let denial = ToolCallDenial(
            reason: .rateLimited, rule: "imageBackgroundRemoval", message: "slow down",
            limit: .init(counter: "imagebackgroundremoval_rate", limit: 10, scope: .grant, window: Self.minute, retryAfterSeconds: 42))
        let handshake = denial.result(era: .handshake)
        #expect(handshake["isError"] == true)
        #expect(handshake["content"] == [["type": "text", "text": "Denied by policy: slow down"]])
        #expect(handshake["resultType"] == nil)
        #expect(handshake["_meta"]?["toolgate/denial"] == [
            "reason": "rate_limited", "rule": "imageBackgroundRemoval", "counter": "imagebackgroundremoval_rate", "limit": 10,
            "scope": "grant", "window": "minute", "windowSeconds": 60, "retryAfterSeconds": 42,
        ])
        #expect(denial.result(era: .perRequest)["resultType"] == "complete")
    }

    @Test func retryAfterIsAtLeastOneSecond() throws {
        let charge = LimitCharge(key: "a", counter: "c", rule: "t", scope: .grant, window: Self.minute, max: 1, algorithm: .fixed, cost: 1)
        let outcome = LimitOutcome(admitted: false, results: [LimitResult(passed: false, remaining: 0, retryAfterMicros: 3)], decidedAtMicros: 0)
        #expect(ToolCallDenial.rateLimited(charges: [charge], outcome: outcome)?.retryAfterSeconds == 1)
    }

    @Test func unknownToolIsInvalidParams() {
        #expect(ToolCallDenial.unknownTool(id: 3, name: "rm") == [
            "jsonrpc": "2.0", "id": 3, "error": ["code": .number(JSONNumber(-32602)), "message": "Unknown tool: rm"],
        ])
    }

    @Test func protocolEraComesFromTheVersionHeader() {
        #expect(ProtocolEra(protocolVersionHeader: nil) == .handshake)
        #expect(ProtocolEra(protocolVersionHeader: "2025-11-25") == .handshake)
        #expect(ProtocolEra(protocolVersionHeader: "2026-07-28") == .perRequest)
        #expect(ProtocolEra(protocolVersionHeader: " 2027-01-01 ") == .perRequest)
        #expect(ProtocolEra(protocolVersionHeader: "garbage") == .handshake)
    }
}

@Suite struct ToolListFilterTests {
    let filter = ToolListFilter(isListed: { $0 != "secret" })

    @Test func removesToolsThePolicyKeepsOut() throws {
        let response: JSONValue = ["jsonrpc": "2.0", "id": 1, "result": ["tools": [["name": "a"], ["name": "secret"]], "nextCursor": "p2"]]
        let filtered = try #require(filter.filter(body: response))
        #expect(filtered["result"]?["tools"] == [["name": "a"]])
        #expect(filtered["result"]?["nextCursor"] == "p2")
    }

    @Test func leavesCleanListsAndOtherResultsAlone() {
        let clean: JSONValue = ["jsonrpc": "2.0", "id": 1, "result": ["tools": [["name": "a"]]]]
        #expect(filter.filter(body: clean) == nil)
        let notAList: JSONValue = ["jsonrpc": "2.0", "id": 1, "result": ["tools": "secret"]]
        #expect(filter.filter(body: notAList) == nil)
    }

    /// Fails closed: the answer is filtered whatever its id (another type, another request, none at all),
    /// and a tool whose name is not a string is dropped.
    @Test func filtersEveryToolListWhateverItsID() throws {
        for id: JSONValue in [2, "5", .null] {
            let answer: JSONValue = ["jsonrpc": "2.0", "id": id, "result": ["tools": [["name": "secret"], ["name": "a"], ["name": 7], [:]]]]
            #expect(try #require(filter.filter(body: answer))["result"]?["tools"] == [["name": "a"]])
        }
        let noID: JSONValue = ["jsonrpc": "2.0", "result": ["tools": [["name": "secret"]]]]
        #expect(try #require(filter.filter(body: noID))["result"]?["tools"] == [])
    }

    @Test func filtersInsideBatchAnswers() throws {
        let batch: JSONValue = [
            ["jsonrpc": "2.0", "id": 1, "result": ["content": []]],
            ["jsonrpc": "2.0", "id": 2, "result": ["tools": [["name": "secret"], ["name": "b"]]]],
        ]
        let filtered = try #require(filter.filter(body: batch))
        #expect(filtered.arrayValue?[1]["result"]?["tools"] == [["name": "b"]])
        #expect(filtered.arrayValue?[0] == batch.arrayValue?[0])
    }

    @Test func theQuickScanNeverMissesAToolsKey() {
        #expect(ToolListFilter.mayContainToolList(Array(#"{"result":{"tools":[]}}"#.utf8)))
        #expect(ToolListFilter.mayContainToolList(Array(#"{"result":{"\u0074ools":[]}}"#.utf8)))
        #expect(ToolListFilter.mayContainToolList(Array(#"{"a":"\\","b":"\u0041"}"#.utf8)))
        #expect(!ToolListFilter.mayContainToolList(Array(#"{"result":{"content":[{"text":"toolset"}]}}"#.utf8)))
        #expect(!ToolListFilter.mayContainToolList(Array(#"{"a":"\\u0041"}"#.utf8)))
    }
}

@Suite struct MCPHeaderCheckTests {
    func message(_ text: String) throws -> JSONRPCMessage {
        guard case .single(let m) = try JSONRPCBody.parse(Array(text.utf8)) else { throw JSONRPCFailure(.invalidRequest, "batch") }
        return m
    }

    @Test func matchingOrAbsentHeadersPass() throws {
        let call = try message(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"imageBackgroundRemoval"}}"#)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "imageBackgroundRemoval", message: call) == nil)
        #expect(MCPHeaderCheck.mismatch(methodHeader: nil, nameHeader: nil, message: call) == nil)
        // "imageBackgroundRemoval" in base64.
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "=?base64?aW1hZ2VCYWNrZ3JvdW5kUmVtb3ZhbA==?=", message: call) == nil)
    }

    @Test func disagreementIsMinus32020() throws {
        let call = try message(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}"#)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/list", nameHeader: nil, message: call)?.code == .headerMismatch)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "echo", message: call)?.code == .headerMismatch)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "=?base64?ZWNobw==?=", message: call)?.code == .headerMismatch)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "=?base64?!!!?=", message: call)?.code == .headerMismatch)
    }

    @Test func thePerRequestEraRequiresTheHeaders() throws {
        let call = try message(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}"#)
        let list = try message(#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
        #expect(MCPHeaderCheck.mismatch(methodHeader: nil, nameHeader: "rm", message: call, era: .perRequest)?.code == .headerMismatch)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: nil, message: call, era: .perRequest)?.code == .headerMismatch)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "rm", message: call, era: .perRequest) == nil)
        #expect(MCPHeaderCheck.mismatch(methodHeader: "tools/list", nameHeader: nil, message: list, era: .perRequest) == nil)
        // The handshake era has no such headers.
        #expect(MCPHeaderCheck.mismatch(methodHeader: nil, nameHeader: nil, message: call, era: .handshake) == nil)
    }

    @Test func base64DecodesWithAndWithoutPadding() {
        #expect(Base64.decode("aGk=") == Array("hi".utf8))
        #expect(Base64.decode("aGk") == Array("hi".utf8))
        #expect(Base64.decode("aGVsbG8gd29ybGQ=") == Array("hello world".utf8))
        #expect(Base64.decode("a") == nil)
        #expect(Base64.decode("a=b=") == nil)
    }
}

@Suite struct AccessTests {
    @Test func grantsMatchByHashOrEnvironment() throws {
        // printf ci-token | sha256sum
        let file = #"{"grants":[{"name":"ci-bot","sha256":"\#(CounterKeyHex.sha256("ci-token"))"},{"name":"alice","tokenEnv":"ALICE_TOKEN"}]}"#
        let table = try GrantTable.parse(Array(file.utf8), file: "grants.json", environment: ["ALICE_TOKEN": "alice-secret"])
        #expect(table.grant(forToken: "ci-token") == "ci-bot")
        #expect(table.grant(forToken: "alice-secret") == "alice")
        #expect(table.grant(forToken: "nope") == nil)
        #expect(table.grant(forToken: "") == nil)
    }

    @Test func badGrantsFilesNameThePath() {
        let cases: [(String, [String: String], String)] = [
            (#"{"grants":[{"name":"a"}]}"#, [:], #"g.json: grants[0]: needs "sha256" or "tokenEnv""#),
            (#"{"grants":[{"name":"a","sha256":"xyz"}]}"#, [:], "g.json: grants[0].sha256: must be 64 hex characters (the SHA-256 of the token)"),
            (#"{"grants":[{"name":"a","tokenEnv":"MISSING"}]}"#, [:], "g.json: grants[0].tokenEnv: environment variable MISSING is not set or empty"),
            (#"{"grants":[{"name":"a","tokenEnv":"T"},{"name":"a","tokenEnv":"T"}]}"#, ["T": "x"], #"g.json: grants[1].name: grant "a" is defined twice"#),
            (#"{"grant":[]}"#, [:], "g.json: grant: unknown key \"grant\" (did you mean \"grants\"?); expected one of: grants"),
            ("{\"grants\": [\n  {\"name\": \"a\",}\n]}", [:], "g.json: invalid JSON at line 2, column 16: expected a string key"),
        ]
        for (text, env, expected) in cases {
            do {
                _ = try GrantTable.parse(Array(text.utf8), file: "g.json", environment: env)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.errors.first?.description == expected)
            }
        }
    }

    @Test func loopbackBindingAcceptsOnlyLoopbackHosts() {
        let guardian = RequestOriginGuard(boundToLoopback: true)
        #expect(guardian.rejection(host: "127.0.0.1:8931", origin: nil) == nil)
        #expect(guardian.rejection(host: "localhost", origin: nil) == nil)
        #expect(guardian.rejection(host: "[::1]:8931", origin: nil) == nil)
        #expect(guardian.rejection(host: "LOCALHOST:1", origin: nil) == nil)
        #expect(guardian.rejection(host: "evil.example:8931", origin: nil) != nil)
        #expect(guardian.rejection(host: "127.0.0.1.evil.example", origin: nil) != nil)
        #expect(guardian.rejection(host: "localhost", origin: "https://evil.example") != nil)
    }

    @Test func otherBindingsUseTheAllowLists() {
        let open = RequestOriginGuard(boundToLoopback: false)
        #expect(open.rejection(host: "toolgate.internal:8931", origin: nil) == nil)
        let listed = RequestOriginGuard(boundToLoopback: false, allowedHosts: ["toolgate.internal"], allowedOrigins: ["https://app.example/"])
        #expect(listed.rejection(host: "toolgate.internal:8931", origin: "https://APP.example") == nil)
        #expect(listed.rejection(host: "other.internal", origin: nil) != nil)
        #expect(listed.rejection(host: "toolgate.internal", origin: "https://evil.example") != nil)
        #expect(RequestOriginGuard.isLoopback(listenHost: "127.0.0.1"))
        #expect(RequestOriginGuard.isLoopback(listenHost: "::1"))
        #expect(!RequestOriginGuard.isLoopback(listenHost: "0.0.0.0"))
    }
}

enum CounterKeyHex {
    static func sha256(_ s: String) -> String {
        // The full digest: subjectHash is its first 32 characters, extended here through the hex helper.
        Array(Crypto.SHA256.hash(data: Array(s.utf8))).hexString
    }
}
