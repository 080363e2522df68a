import Testing
@testable import ToolgateCore

/// DESIGN.md section 7, "Multi-round calls are one call": what the relay notes, what a binding binds, and the
/// embedded store's use-once, expiry and bounds, on a manual clock.
@Suite struct MultiRoundTests {
    static let call = ResponseRelay.ForwardedToolCall(id: 7, tool: "wizard", arguments: ["n": 1])

    static func answer(id: JSONValue, resultType: String = "input_required", state: JSONValue = "S1") -> String {
        JSONWriter.string(
            [
                "jsonrpc": "2.0", "id": id,
                "result": ["resultType": .string(resultType), "requestState": state, "inputRequests": [:]],
            ])
    }

    func relay(_ contentType: String, calls: [ResponseRelay.ForwardedToolCall] = [Self.call]) -> ResponseRelay {
        ResponseRelay(
            plan: .init(requestIDs: calls.map(\.id), toolCalls: calls), status: 200, contentType: contentType,
            filter: ToolListFilter(isListed: { _ in true }))
    }

    @Test func anInputRequiredAnswerOnAStreamIsNotedBeforeItIsRelayed() throws {
        var r = relay("text/event-stream")
        let event = "data: " + Self.answer(id: 7) + "\n\n"
        let out = try r.receive(Array(event.utf8))
        #expect(out == Array(event.utf8))
        #expect(r.takeRelayedRounds() == [.init(tool: "wizard", arguments: ["n": 1], requestState: "S1")])
        #expect(r.takeRelayedRounds().isEmpty, "taken once")
    }

    @Test(arguments: [
        // another id; a second answer to the same id; a request from the server; a complete result; a state that
        // is not a string; an error
        Self.answer(id: 8),
        Self.answer(id: 7, resultType: "complete") + "\n\ndata: " + Self.answer(id: 7),
        #"{"jsonrpc":"2.0","id":7,"method":"x","result":{"resultType":"input_required","requestState":"S1"}}"#,
        Self.answer(id: 7, resultType: "complete"),
        Self.answer(id: 7, state: 42),
        Self.answer(id: "7"),
        #"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"input_required"}}"# + "\n\ndata: " + Self.answer(id: 7),
    ])
    func onlyTheFirstAnswerToAForwardedCallCounts(body: String) throws {
        var r = relay("text/event-stream")
        _ = try r.receive(Array(("data: " + body + "\n\n").utf8))
        #expect(r.takeRelayedRounds().isEmpty)
    }

    @Test func aJSONAnswerIsNotedAndStillRelayedByteForByte() throws {
        let raw = Self.answer(id: 7)
        var r = relay("application/json")
        _ = try r.receive(Array(raw.utf8))
        #expect(r.finish().bytes == Array(raw.utf8))
        #expect(r.takeRelayedRounds().map(\.requestState) == ["S1"])
    }

    @Test func batchAnswersAreNotedPerCall() throws {
        let other = ResponseRelay.ForwardedToolCall(id: "b", tool: "other", arguments: [:])
        var r = relay("application/json", calls: [Self.call, other])
        let raw = "[" + Self.answer(id: "b", state: "S2") + "," + Self.answer(id: 7, resultType: "complete") + "]"
        _ = try r.receive(Array(raw.utf8))
        _ = r.finish()
        #expect(r.takeRelayedRounds() == [.init(tool: "other", arguments: [:], requestState: "S2")])
    }

    /// A reload that changes what decides a tool (its entry, the `"*"` entry, the default that lets it in) gives its
    /// calls another digest; an unrelated edit, or the same entry respelled, does not.
    @Test func theDecidingDigestFollowsOnlyWhatDecidesTheTool() throws {
        func digest(_ text: String, _ tool: String = "run") throws -> String {
            try Policy.parse(text, file: "p.json").decidingDigest(forTool: tool)
        }
        let base = try digest(#"{"version":"1","tools":{"run":{"limits":[{"counter":"c","window":"minute","max":5}]},"other":{}}}"#)
        #expect(try digest(#"{"version":"1","tools":{"other":{"action":"deny"},"run":{"limits":[{"max":5,"counter":"c","window":"minute"}]}}}"#) == base)
        for changed in [
            #"{"version":"1","tools":{"run":{"action":"approve","limits":[{"counter":"c","window":"minute","max":5}]}}}"#,
            #"{"version":"1","tools":{"run":{"limits":[{"counter":"c","window":"minute","max":6}]}}}"#,
            #"{"version":"1","tools":{"run":{"limits":[{"counter":"c","window":"minute","max":5}]},"*":{"limits":[{"counter":"all","window":"hour","max":9}]}}}"#,
        ] {
            #expect(try digest(changed) != base, "\(changed)")
        }
        // A tool let in by `default: allow` is decided by the default: a new entry for it changes that.
        let byDefault = try digest(#"{"version":"1","default":"allow","tools":{}}"#)
        #expect(try digest(#"{"version":"1","default":"allow","tools":{"run":{"action":"approve"}}}"#) != byDefault)
        #expect(try digest(#"{"version":"1","default":"allow","tools":{"other":{}}}"#) == byDefault)
    }

    @Test func aBindingChangesWithEachOfItsParts() throws {
        let base = RoundBinding(grant: "g", tool: "t", arguments: ["a": 1, "b": [1, 2]], decidedBy: "p", requestState: "s")
        // Member order and number spelling do not matter: the arguments are canonical.
        let respelled = try JSONParser.parse(Array(#"{"b":[1,2.0],"a":1e0}"#.utf8))
        #expect(base == RoundBinding(grant: "g", tool: "t", arguments: respelled, decidedBy: "p", requestState: "s"))
        let others = [
            RoundBinding(grant: "h", tool: "t", arguments: ["a": 1, "b": [1, 2]], decidedBy: "p", requestState: "s"),
            RoundBinding(grant: "g", tool: "u", arguments: ["a": 1, "b": [1, 2]], decidedBy: "p", requestState: "s"),
            RoundBinding(grant: "g", tool: "t", arguments: ["a": 2, "b": [1, 2]], decidedBy: "p", requestState: "s"),
            RoundBinding(grant: "g", tool: "t", arguments: ["a": 1, "b": [1, 2]], decidedBy: "p", requestState: "s "),
            RoundBinding(grant: "g", tool: "t", arguments: ["a": 1, "b": [1, 2]], decidedBy: "q", requestState: "s"),
            // Length prefixes: moving a byte between parts makes another binding.
            RoundBinding(grant: "gt", tool: "", arguments: ["a": 1, "b": [1, 2]], decidedBy: "p", requestState: "s"),
        ]
        for other in others { #expect(other != base) }
        #expect(base.key.count == 64)
    }

    @Test func aRememberedStateIsTakenOnceAndExpires() async throws {
        let clock = ManualWallClock(micros: 1_000_000)
        let store = InMemoryRoundStateStore(clock: clock)
        let a = RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "a")
        let b = RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "b")
        #expect(try await store.take(a) == false, "never relayed")
        try await store.remember(a, ttlSeconds: 600)
        try await store.remember(b, ttlSeconds: 600)
        #expect(try await store.take(a))
        #expect(try await store.take(a) == false, "replayed after its use")
        clock.advance(micros: 600_000_000 - 1)
        #expect(store.count == 1)
        clock.advance(micros: 1)
        #expect(try await store.take(b) == false, "expired at exactly its lifetime")
        #expect(store.count == 0 && store.queued == 0)
    }

    @Test func rememberingAgainKeepsTheLaterLifetime() async throws {
        let clock = ManualWallClock(micros: 0)
        let store = InMemoryRoundStateStore(clock: clock)
        let a = RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "a")
        try await store.remember(a, ttlSeconds: 10)
        clock.advance(micros: 5_000_000)
        try await store.remember(a, ttlSeconds: 10)
        clock.advance(micros: 6_000_000)  // past the first lifetime, within the second
        #expect(try await store.take(a))
    }

    @Test func memoryIsBoundedByCapacityAndLifetime() async throws {
        let clock = ManualWallClock(micros: 0)
        let store = InMemoryRoundStateStore(clock: clock, capacity: 100)
        for i in 0..<10_000 {
            store.rememberNow(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: String(i)), ttlSeconds: 600)
            #expect(store.queued <= 100)
        }
        #expect(store.count == 100)
        // The oldest leave first: their follow-ups are charged, the newest still ride free.
        #expect(!store.takeNow(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "9899")))
        #expect(store.takeNow(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "9900")))
        // Taken states leave the queue when they would have expired; nothing stays past one lifetime.
        for i in 0..<50 {
            _ = store.takeNow(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: String(9950 + i)))
        }
        clock.advance(micros: 600_000_000)
        store.rememberNow(RoundBinding(grant: "g", tool: "t", arguments: [:], decidedBy: "p", requestState: "late"), ttlSeconds: 600)
        #expect(store.count == 1 && store.queued == 1)
    }

    @Test func aFollowUpsStateIsReadFromTheCall() throws {
        let message = try JSONRPCMessage(
            JSONParser.parse(Array(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":"S"}}"#.utf8)))
        #expect(try message.toolCall().requestState == "S")
        let other = try JSONRPCMessage(
            JSONParser.parse(Array(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":1}}"#.utf8)))
        #expect(try other.toolCall().requestState == nil)
    }
}
