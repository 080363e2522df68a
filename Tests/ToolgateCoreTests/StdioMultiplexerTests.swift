import Testing
@testable import ToolgateCore

/// Many clients, one stdio server: ids, progress tokens, cancellations and the server's own requests never cross
/// between clients.
@Suite struct StdioMultiplexerTests {
    static func object(_ text: String) -> JSONObject { (try! JSONParser.parse(Array(text.utf8))).objectValue! }

    static func caller(_ session: String?, grant: String = "g") -> StdioMultiplexer.Caller {
        StdioMultiplexer.Caller(grant: grant, session: session)
    }

    static func call(_ id: String, progress: String? = nil, modern: Bool = false) -> JSONObject {
        var meta: [String] = []
        if let progress { meta.append(#""progressToken":\#(progress)"#) }
        if modern { meta.append(#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{}"#) }
        let metaText = meta.isEmpty ? "" : #","_meta":{\#(meta.joined(separator: ","))}"#
        return object(#"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"t"\#(metaText)}}"#)
    }

    @Test func twoClientsWithTheSameIDsGetTheirOwnAnswersAndProgress() {
        var m = StdioMultiplexer()
        let a = m.request(Self.call("1", progress: "7"), client: 1, caller: Self.caller("s1"))
        let b = m.request(Self.call("1", progress: "7"), client: 2, caller: Self.caller("s2"))
        #expect(a["id"] != b["id"])
        #expect(a["params"]?["_meta"]?["progressToken"] != b["params"]?["_meta"]?["progressToken"])
        let progressB: JSONValue = [
            "jsonrpc": "2.0", "method": "notifications/progress",
            "params": ["progressToken": b["params"]!["_meta"]!["progressToken"]!, "progress": 1],
        ]
        #expect(m.inbound(progressB) == [.client(2, ["jsonrpc": "2.0", "method": "notifications/progress", "params": ["progressToken": 7, "progress": 1]])])
        let answerA: JSONValue = ["jsonrpc": "2.0", "id": a["id"]!, "result": ["content": []]]
        #expect(m.inbound(answerA) == [.client(1, ["jsonrpc": "2.0", "id": 1, "result": ["content": []]])])
        #expect(m.inbound(answerA).isEmpty, "answered once")
        #expect(m.pendingCount(client: 1) == 0 && m.pendingCount(client: 2) == 1)
    }

    @Test func aCancellationIsMappedWithinItsSessionOnlyAndEndsTheExchange() {
        var m = StdioMultiplexer()
        let a = m.request(Self.call("5"), client: 1, caller: Self.caller("s1"))
        _ = m.request(Self.call("5"), client: 2, caller: Self.caller("s2"))
        let cancel = Self.object(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#)
        #expect(m.notification(cancel, client: 9, caller: Self.caller("s3")).toServer == nil, "another session's id is not ours to cancel")
        #expect(m.notification(cancel, client: 9, caller: Self.caller("s1", grant: "h")).toServer == nil, "nor another grant's")
        let outcome = m.notification(cancel, client: 3, caller: Self.caller("s1"))
        #expect(outcome.toServer?["params"]?["requestId"] == a["id"])
        #expect(outcome.deliveries.count == 1)
        guard case .client(1, let ended)? = outcome.deliveries.first else {
            Issue.record("the cancelled request's exchange gets an error for its id")
            return
        }
        #expect(ended["id"] == 5 && ended["error"]?["code"] == -32603)
        #expect(m.pendingCount(client: 1) == 0 && m.pendingCount(client: 2) == 1)
        #expect(m.inbound(["jsonrpc": "2.0", "id": a["id"]!, "result": [:]]).isEmpty, "a late answer goes nowhere")
        #expect(m.notification(Self.object(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), client: 3, caller: Self.caller("s1")).toServer == nil)
    }

    @Test func withoutASessionOnlyTheSameExchangeMayCancel() {
        var m = StdioMultiplexer()
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller(nil))
        let cancel = Self.object(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#)
        #expect(m.notification(cancel, client: 2, caller: Self.caller(nil)).toServer == nil, "a guessed id from another exchange")
        #expect(m.notification(cancel, client: 2, caller: Self.caller("s1")).toServer == nil, "a session is not the missing one")
        #expect(m.pendingCount(client: 1) == 1)
        #expect(m.notification(cancel, client: 1, caller: Self.caller(nil)).toServer != nil, "its own exchange")
    }

    @Test func onlyTheClientARequestWasRoutedToMayAnswerIt() {
        var m = StdioMultiplexer()
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller("victim"))
        let elicit: JSONValue = ["jsonrpc": "2.0", "id": 0, "method": "elicitation/create", "params": [:]]
        guard case .client(1, let routed)? = m.inbound(elicit).first, let routedID = routed["id"]?.stringValue else {
            Issue.record("not routed to client 1")
            return
        }
        let answer = Self.object(#"{"jsonrpc":"2.0","id":"\#(routedID)","result":{"action":"accept"}}"#)
        #expect(m.response(answer, caller: Self.caller("victim", grant: "other")) == .failure(.otherClient))
        #expect(m.response(answer, caller: Self.caller(nil)) == .failure(.otherClient))
        #expect(m.response(answer, caller: Self.caller("attacker")) == .failure(.otherClient))
        #expect(m.refusal(of: answer, caller: Self.caller("victim")) == nil, "checking takes nothing")
        #expect(m.response(answer, caller: Self.caller("victim")).map { $0["id"] } == .success(0), "the rightful answer still goes")
        #expect(m.response(answer, caller: Self.caller("victim")) == .failure(.unknownRequest), "once")
    }

    @Test func aServerRequestForAClientWithoutASessionIsRefusedTowardsTheServer() {
        var m = StdioMultiplexer()
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller(nil))
        let elicit: JSONValue = ["jsonrpc": "2.0", "id": 0, "method": "elicitation/create", "params": [:]]
        guard case .server(let refusal)? = m.inbound(elicit).first else {
            Issue.record("no one could answer it: refused")
            return
        }
        #expect(refusal["error"]?["code"] == -32603 && refusal["id"] == 0)
    }

    @Test func notificationsNoOneClientCanBeToldForGoNowhereListChangesToEveryone() {
        var m = StdioMultiplexer()
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller("a"))
        for method in ["notifications/message", "notifications/resources/updated", "notifications/progress"] {
            let note: JSONValue = ["jsonrpc": "2.0", "method": .string(method), "params": ["progressToken": "unknown", "uri": "x://y"]]
            #expect(m.inbound(note).isEmpty, "\(method) with one client in flight goes to no one")
        }
        _ = m.request(Self.call("1"), client: 2, caller: Self.caller("b", grant: "h"))
        for method in StdioMultiplexer.broadcastNotifications.sorted() {
            let note: JSONValue = ["jsonrpc": "2.0", "method": .string(method)]
            #expect(m.inbound(note) == [.client(1, note), .client(2, note)], "\(method) goes to every client")
        }
    }

    @Test func theServersOwnRequestGoesToTheOnlyClientWithCallsInFlight() {
        var m = StdioMultiplexer()
        let elicit: JSONValue = ["jsonrpc": "2.0", "id": 0, "method": "elicitation/create", "params": [:]]
        guard case .server(let refusal)? = m.inbound(elicit).first else {
            Issue.record("refused with no call in flight")
            return
        }
        #expect(refusal["error"]?["code"] == -32603)
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller("s1"))
        guard case .client(1, let routed)? = m.inbound(elicit).first, let routedID = routed["id"]?.stringValue else {
            Issue.record("not routed to client 1")
            return
        }
        let answer = Self.object(#"{"jsonrpc":"2.0","id":"\#(routedID)","result":{"action":"accept"}}"#)
        #expect(m.response(answer, caller: Self.caller("s1")).map { $0["id"] } == .success(0), "the server gets its own id back")
        #expect(m.response(answer, caller: Self.caller("s1")) == .failure(.unknownRequest), "once")
        _ = m.request(Self.call("2"), client: 2, caller: Self.caller("s2"))
        guard case .server(let ambiguous)? = m.inbound(elicit).first else {
            Issue.record("two clients in flight: refused")
            return
        }
        #expect(ambiguous["error"]?["message"]?.stringValue?.contains("2 clients") == true)
    }

    @Test func perRequestEraClientsAreServedByAHandshakeEraServer() {
        var m = StdioMultiplexer(serverInfo: ["name": "s", "version": "1"])
        let sent = m.request(Self.call("1", progress: "\"p\"", modern: true), client: 1, caller: Self.caller(nil))
        #expect(sent["params"]?["_meta"]?.objectValue?.keys == ["progressToken"], "the envelope keys are removed")
        let answer: JSONValue = ["jsonrpc": "2.0", "id": sent["id"]!, "result": ["content": []]]
        guard case .client(1, let delivered)? = m.inbound(answer).first else {
            Issue.record("not delivered")
            return
        }
        #expect(delivered["result"]?["resultType"] == "complete")
        #expect(delivered["result"]?["_meta"]?["io.modelcontextprotocol/serverInfo"]?["name"] == "s")
    }

    @Test func whenTheServerExitsEveryCallInFlightGetsAnError() {
        var m = StdioMultiplexer()
        _ = m.request(Self.call("1"), client: 1, caller: Self.caller(nil))
        _ = m.request(Self.call("\"x\""), client: 2, caller: Self.caller(nil))
        let errors = m.serverExited("upstream command exited")
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { if case .client(_, let e) = $0 { e["error"]?["code"] == -32603 } else { false } })
        #expect(m.pendingCount == 0)
    }

    @Test func aDepartedClientsCallsAreCancelledAtTheServer() {
        var m = StdioMultiplexer()
        let a = m.request(Self.call("1", progress: "1"), client: 1, caller: Self.caller(nil))
        _ = m.request(Self.call("1"), client: 2, caller: Self.caller(nil))
        let cancellations = m.clientGone(1)
        #expect(cancellations.count == 1)
        #expect(cancellations[0]["params"]?["requestId"] == a["id"])
        #expect(m.pendingCount == 1)
        let late: JSONValue = ["jsonrpc": "2.0", "id": a["id"]!, "result": [:]]
        #expect(m.inbound(late).isEmpty)
    }
}
