import Testing
@testable import ToolgateCore

/// The relay's stages without sockets: list filtering that fails closed, local-answer merging, early-end
/// detection and the refund decision.
@Suite struct ResponseRelayTests {
    let filter = ToolListFilter(isListed: { $0 != "secret" })

    func relay(_ plan: ResponseRelay.Plan, status: Int = 200, _ contentType: String?) -> ResponseRelay {
        ResponseRelay(plan: plan, status: status, contentType: contentType, filter: filter)
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func events(_ bytes: [UInt8]) -> [JSONValue] {
        var parser = SSEParser()
        return ((try? parser.feed(bytes)) ?? []).compactMap { try? JSONParser.parse(Array($0.data.utf8)) }
    }

    @Test func modesFollowTheContentType() {
        #expect(relay(.init(), "text/event-stream; charset=utf-8").mode == .eventStream)
        #expect(relay(.init(), "application/json").mode == .json)
        #expect(relay(.init(), "application/problem+json").mode == .json)
        #expect(relay(.init(), "text/plain").mode == .opaque)
        #expect(relay(.init(), nil).mode == .opaque)
        // Whatever type an answer to tools/list claims, it is read and judged.
        #expect(relay(.init(requestIDs: [1], listsTools: true), "text/plain").mode == .json)
        #expect(relay(.init(requestIDs: [1], listsTools: true), nil).mode == .json)
    }

    @Test func streamEventsAreFilteredAndUnreadableOnesDropped() throws {
        var r = relay(.init(requestIDs: [4], listsTools: true), "text/event-stream")
        let stream = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"
            + "data: not json {\"tools\":[{\"name\":\"secret\"}]}\n\n"
            + ": keepalive\n\n"
            + "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"4\",\"result\":{\"tools\":[{\"name\":\"secret\"},{\"name\":\"a\"}]}}\n\n"
            + "data: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\n"
        var out: [UInt8] = []
        for byte in Array(stream.utf8) { out += try r.receive([byte]) }
        let end = r.finish()
        let text = Self.text(out + end.bytes)
        #expect(!text.contains("secret"))
        #expect(text.contains(#"{"name":"a"}"#))
        #expect(text.hasPrefix("id: 1\ndata: "))
        #expect(text.contains(": keepalive"))
        #expect(r.droppedEvents == 1)
        #expect(end.bytes.isEmpty)  // id 4 was answered
        #expect(!end.refund && !end.abort)
    }

    /// A stream that ends (cleanly or broken) before the answers: one -32603 event per unanswered id.
    @Test(arguments: [false, true])
    func aStreamThatEndsEarlyAnswersEachUnansweredID(broken: Bool) throws {
        var r = relay(.init(requestIDs: [1, "two", 3]), "text/event-stream")
        let progress = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n"
        let answer = "data: [{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}]\n\n"
        let partial = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}"
        let out = try r.receive(Array((progress + answer + partial).utf8))
        let end = broken ? r.fail("connection reset") : r.finish()
        #expect(Self.events(out).count == 2)
        let errors = Self.events(end.bytes)
        #expect(errors.map { $0["id"] } == [1, "two"])
        #expect(errors.allSatisfy { $0["error"]?["code"] == -32603 })
        #expect(errors.allSatisfy { $0["error"]?["message"] == "upstream stream ended before the answer" })
        #expect(!Self.text(out + end.bytes).contains("secret"))  // a cut-off event is never passed on
        #expect(!end.abort && !end.refund)
        #expect(r.finish() == ResponseRelay.Ending())  // ends once
    }

    @Test func localAnswersGoFirstOnAStreamAndJoinAJSONBatch() throws {
        let local: JSONValue = ["jsonrpc": "2.0", "id": 9, "result": ["isError": true]]
        let stream = relay(.init(requestIDs: [1], localAnswers: [local]), "text/event-stream")
        #expect(Self.events(stream.start()) == [[local]])

        var json = relay(.init(requestIDs: [1], localAnswers: [local]), "application/json")
        #expect(json.start().isEmpty)
        _ = try json.receive(Array(#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret"}]}}]"#.utf8))
        let end = json.finish()
        let merged = try JSONParser.parse(end.bytes)
        #expect(merged.arrayValue?.count == 2)
        #expect(merged.arrayValue?[0]["result"]?["tools"] == [])
        #expect(merged.arrayValue?[1] == local)
        #expect(end.contentType == "application/json")

        // Only notifications went upstream: its 202 and empty body become a 200 with toolgate's answers.
        var accepted = ResponseRelay(plan: .init(localAnswers: [local]), status: 202, contentType: nil, filter: filter)
        #expect(accepted.mode == .opaque)
        accepted = ResponseRelay(plan: .init(localAnswers: [local]), status: 202, contentType: "application/json", filter: filter)
        let end202 = accepted.finish()
        #expect(end202.status == 200)
        #expect(try JSONParser.parse(end202.bytes) == [local])
    }

    @Test func aJSONToolListThatDoesNotParseBecomesAnError() throws {
        var r = relay(.init(requestIDs: [5], listsTools: true), "application/json")
        _ = try r.receive(Array(#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"secret"}"#.utf8))
        let end = r.finish()
        let body = try JSONParser.parse(end.bytes)
        #expect(body["id"] == 5)
        #expect(body["error"]?["code"] == -32603)
        #expect(!Self.text(end.bytes).contains("secret"))
    }

    @Test func aJSONBodyThatNeedsNothingIsRelayedByteForByte() throws {
        let raw = #"{"jsonrpc":"2.0", "id":1, "result":{"content":[{"type":"text","text":"1.50"}]}}"#
        var r = relay(.init(requestIDs: [1]), "application/json")
        _ = try r.receive(Array(raw.utf8))
        #expect(r.finish().bytes == Array(raw.utf8))
    }

    @Test func aBrokenJSONOrOpaqueBodyIsAborted() throws {
        var json = relay(.init(requestIDs: [1]), "application/json")
        _ = try json.receive(Array(#"{"jsonrpc":"2.0","id":1,"res"#.utf8))
        #expect(json.fail("connection reset").abort)
        // Opaque: nothing forwarded that needs an answer (a GET, a DELETE, notifications).
        var opaque = relay(.init(), "text/plain")
        #expect(try opaque.receive([1, 2, 3]) == [1, 2, 3])
        #expect(opaque.fail("idle timeout").abort)
        #expect(!opaque.finish().abort)
    }

    /// A 404 page from a wrong `--upstream` path (or any answer to requests that is neither JSON nor an event
    /// stream) reaches the agent as a JSON-RPC error per request naming the status, never as the page.
    @Test func anAnswerToRequestsThatIsNotJSONRPCBecomesErrors() throws {
        var r = ResponseRelay(plan: .init(requestIDs: [1, "b"]), status: 404, contentType: "text/plain", filter: filter)
        #expect(r.mode == .notJSONRPC)
        #expect(try r.receive(Array("Not Found".utf8)).isEmpty)
        let end = r.finish()
        #expect(end.replacedNotJSONRPC && !end.abort && !end.refund)
        #expect(end.status == 200 && end.contentType == "application/json")
        let answers = try JSONParser.parse(end.bytes).arrayValue ?? []
        #expect(answers.compactMap { $0["id"] } == [1, "b"])
        #expect(answers.allSatisfy { $0["error"]?["code"] == -32603 && ($0["error"]?["message"]?.stringValue ?? "").contains("HTTP 404 (text/plain)") })
        // A JSON answer that does not parse, to requests, whatever its status: errors too.
        var json = ResponseRelay(plan: .init(requestIDs: [1]), status: 502, contentType: "application/json", filter: filter)
        _ = try json.receive(Array("<html>bad gateway</html>".utf8))
        let jsonEnd = json.finish()
        #expect(jsonEnd.replacedNotJSONRPC)
        #expect(try JSONParser.parse(jsonEnd.bytes)["error"]?["message"]?.stringValue?.contains("HTTP 502") == true)
    }

    @Test func aJSONBodyPastTheLimitIsRefused() throws {
        var r = ResponseRelay(plan: .init(requestIDs: [1]), status: 200, contentType: "application/json", filter: filter, maximumJSONBytes: 8)
        #expect(throws: ResponseRelay.Failure.bodyTooLarge(8)) { _ = try r.receive(Array(repeating: 0x20, count: 9)) }
    }

    @Test func onlyAnUpFrontValidationRefusalRefunds() throws {
        func ending(_ status: Int, _ body: String) throws -> ResponseRelay.Ending {
            var r = relay(.init(requestIDs: [1]), status: status, "application/json")
            _ = try r.receive(Array(body.utf8))
            return r.finish()
        }
        for code in [-32700, -32600, -32601, -32602, -32020] {
            #expect(try ending(400, #"{"jsonrpc":"2.0","id":1,"error":{"code":\#(code),"message":"no"}}"#).refund)
        }
        #expect(try ending(422, #"[{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}]"#).refund)
        #expect(try !ending(400, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"no"}}"#).refund)
        #expect(try !ending(400, #"[{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}},{"jsonrpc":"2.0","id":2,"result":{}}]"#).refund)
        #expect(try !ending(500, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#).refund)
        #expect(try !ending(200, #"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#).refund)
        #expect(try !ending(400, "not json").refund)
        #expect(RefundRule.refunds(afterTransportFailure: UpstreamError(code: .unreachable, message: "", requestSent: false)))
        #expect(!RefundRule.refunds(afterTransportFailure: UpstreamError(code: .headersTimeout, message: "")))
        #expect(!RefundRule.refunds(afterTransportFailure: UpstreamError(code: .transport, message: "")))
    }
}

@Suite struct SessionRegistryTests {
    @Test func onlyIssuedSessionsOfTheSameGrantCount() {
        var registry = SessionRegistry()
        registry.issued(grant: "alice", session: "s1", now: 0)
        let live1 = registry.isSession(grant: "alice", session: "s1", now: 1)

        #expect(live1)
        let live2 = registry.isSession(grant: "bob", session: "s1", now: 1)

        #expect(!live2)
        let live3 = registry.isSession(grant: "alice", session: "made-up", now: 1)

        #expect(!live3)
        // Length-prefixed keys: ("ab", "c") is not ("a", "bc").
        registry.issued(grant: "ab", session: "c", now: 0)
        let live4 = registry.isSession(grant: "a", session: "bc", now: 1)

        #expect(!live4)
        registry.ended(grant: "alice", session: "s1")
        let live5 = registry.isSession(grant: "alice", session: "s1", now: 2)

        #expect(!live5)
    }

    @Test func idleSessionsExpireAndUseKeepsThemAlive() {
        var registry = SessionRegistry(idleMicros: 100)
        registry.issued(grant: "g", session: "busy", now: 0)
        registry.issued(grant: "g", session: "idle", now: 0)
        let live6 = registry.isSession(grant: "g", session: "busy", now: 90)

        #expect(live6)
        let live7 = registry.isSession(grant: "g", session: "busy", now: 180)

        #expect(live7)
        let live8 = registry.isSession(grant: "g", session: "idle", now: 180)

        #expect(!live8)
    }

    @Test func capacityIsBoundedByEvictingTheLeastRecentlyUsed() {
        var registry = SessionRegistry(capacity: 100)
        for i in 0..<1_000 { registry.issued(grant: "g", session: "s\(i)", now: Int64(i)) }
        #expect(registry.count <= 100)
        let live9 = registry.isSession(grant: "g", session: "s999", now: 1_000)

        #expect(live9)
        let live10 = registry.isSession(grant: "g", session: "s0", now: 1_000)

        #expect(!live10)
    }

    @Test func aSessionCounterBelongsToTheGrantAndTheSession() {
        let alice = Identity(grant: "alice", session: "s1", agent: "h")
        let bob = Identity(grant: "bob", session: "s1", agent: "h")
        let key = CounterKey(prefix: "tg")
        #expect(key.resolve(counter: "c", scope: .session, identity: alice).key != key.resolve(counter: "c", scope: .session, identity: bob).key)
        let fallback = key.resolve(counter: "c", scope: .session, identity: Identity(grant: "alice", agent: "h"))
        #expect(fallback.appliedScope == .grant)
        #expect(fallback.key != key.resolve(counter: "c", scope: .session, identity: alice).key)
    }
}

@Suite struct RequestOriginGuardTests {
    let loopback = RequestOriginGuard(boundToLoopback: true)

    @Test func loopbackOriginsAreAcceptedOnLoopbackAsTheSDKServersDo() {
        for origin in ["http://127.0.0.1:8931", "http://localhost:3000", "https://[::1]:1", "http://LOCALHOST", "http://127.0.0.1:8931/"] {
            #expect(loopback.rejection(host: "127.0.0.1:8931", origin: origin) == nil, "\(origin)")
        }
        for origin in ["http://evil.example.com", "http://127.0.0.1.evil.example", "ftp://localhost", "http://localhost:x", "null",
                       "http://localhost@evil.example"] {
            #expect(loopback.rejection(host: "127.0.0.1:8931", origin: origin) != nil, "\(origin)")
        }
        #expect(loopback.rejection(host: "evil.example.com", origin: "http://evil.example.com") == .forbidden(#"Host "evil.example.com" is not a loopback name"#))
        // Off loopback, only listed origins.
        #expect(RequestOriginGuard(boundToLoopback: false).rejection(host: "h", origin: "http://localhost:1") != nil)
    }

    @Test func authoritiesAreParsedStrictly() {
        #expect(loopback.rejection(host: nil, origin: nil) == .badAuthority("the request has no Host"))
        for bad in ["[::1]anything", "[::1]:80x", "localhost:", "localhost:99999", "local host", "", "[::1", "a/b", "localhost:80:80"] {
            #expect(loopback.rejection(host: bad, origin: nil) != nil, "\(bad)")
        }
        for good in ["localhost", "127.0.0.1:8931", "[::1]", "[::1]:65535", "LocalHost:1"] {
            #expect(loopback.rejection(host: good, origin: nil) == nil, "\(good)")
        }
        #expect(RequestOriginGuard.parseAuthority("Example.COM:80")! == ("example.com", 80))
    }
}
