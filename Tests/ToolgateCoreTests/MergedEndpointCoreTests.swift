import Testing
@testable import ToolgateCore

/// The merged endpoint's pure parts (DESIGN.md section 10): names, cursors, merged pages, resource owners, the
/// handshake and routing. The end-to-end behaviour is Tests/e2e/test_merged_endpoint.py.
@Suite struct MergedEndpointCoreTests {
    let names = MergedNames(servers: ["github", "files", "a", "a__b"], separator: "__")

    @Test func namesCarryTheirServerAndComeBack() throws {
        #expect(names.exposed(server: "github", name: "create_issue") == "github__create_issue")
        let routed = try #require(names.route("github__create_issue"))
        #expect(routed.server == "github" && routed.name == "create_issue")
        // The longest server name wins: `a__b__x` is `x` of `a__b`.
        let nested = try #require(names.route("a__b__x"))
        #expect(nested.server == "a__b" && nested.name == "x")
        #expect(names.route("a__x")?.server == "a")
        // No server, or nothing after the prefix.
        #expect(names.route("nobody__x") == nil)
        #expect(names.route("github__") == nil)
        #expect(names.route("create_issue") == nil)
    }

    @Test func aMergedNameMustBeAValidToolName() {
        #expect(names.exposed(server: "github", name: "has space") == nil)
        #expect(names.exposed(server: "github", name: String(repeating: "x", count: 121)) == nil)
        #expect(names.exposed(server: "github", name: String(repeating: "x", count: 120)) != nil)
        #expect(names.exposed(server: "github", name: "ünïcode") == nil)
        #expect(MergedNames.separatorProblem("__") == nil)
        #expect(MergedNames.separatorProblem("") != nil)
        #expect(MergedNames.separatorProblem("/") != nil)
        #expect(MergedNames.separatorProblem("123456789") != nil)
    }

    @Test func cursorsRoundTripAndForgedOnesAreRefused() throws {
        let cursor = MergedCursor(pending: [.init(server: "github", cursor: "p2"), .init(server: "files", cursor: nil)])
        #expect(try MergedCursor(decoding: cursor.encoded()) == cursor)
        let duplicated = "tg1." + Base64.encodeURLSafe(Array(#"[["github","a"],["github","b"]]"#.utf8))
        for forged in ["", "abc", "tg1.", "tg1.!!!", "tg1." + Base64.encodeURLSafe(Array("{}".utf8)),
                       "tg1." + Base64.encodeURLSafe(Array("[[1,2]]".utf8)), "tg1." + Base64.encodeURLSafe(Array("[]".utf8)),
                       duplicated] {
            #expect(throws: JSONRPCFailure.self, "\(forged)") { try MergedCursor(decoding: forged) }
        }
        #expect(throws: JSONRPCFailure.self) { try MergedCursor(decoding: "tg1." + String(repeating: "A", count: 70_000)) }
    }

    @Test func base64URLSafeRoundTrips() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(($0 * 37 + 11) % 256) }
            #expect(Base64.decode(Base64.encodeURLSafe(bytes)[...]) == bytes)
        }
        #expect(Base64.encodeURLSafe(Array("\u{FB}\u{FF}".utf8)).allSatisfy { $0 != "+" && $0 != "/" && $0 != "=" })
    }

    @Test func pagesMergeWithPrefixesCursorsAndFailures() throws {
        let page = MergedListPage.merge(
            .tools,
            pages: [
                ("github", .page(["tools": [["name": "search"], ["name": "bad name"]], "nextCursor": "g2", "ttlMs": 5000,
                                  "cacheScope": "public", "resultType": "complete"])),
                ("files", .failed("HTTP 502")),
                ("a", .page(["tools": [["name": "read", "description": "d"]], "ttlMs": 100])),
            ],
            names: names)
        let tools = try #require(page.result["tools"]?.arrayValue)
        #expect(tools.map { $0["name"]?.stringValue } == ["github__search", "a__read"])
        #expect(tools[1]["description"] == "d")
        #expect(page.leftOut.map(\.name) == ["bad name"])
        #expect(page.failed.map(\.server) == ["files"])
        let next = try MergedCursor(decoding: try #require(page.result["nextCursor"]?.stringValue))
        #expect(next.pending == [.init(server: "github", cursor: "g2")])
        // The shortest-lived part bounds the whole, which is the caller's own (filtered) view.
        #expect(page.result["ttlMs"] == 100 && page.result["cacheScope"] == "private" && page.result["resultType"] == "complete")
        let last = MergedListPage.merge(.tools, pages: [("github", .page(["tools": []]))], names: names)
        #expect(last.result["nextCursor"] == nil)
    }

    @Test func resourcesKeepTheirURIsAndGoToWhoListedThem() {
        let page = MergedListPage.merge(
            .resources,
            pages: [("github", .page(["resources": [["uri": "repo://x"]]])), ("files", .page(["resources": [["uri": "file:///a"], ["uri": "repo://x"]]]))],
            names: names)
        #expect(page.result["resources"]?.arrayValue?.compactMap { $0["uri"]?.stringValue } == ["repo://x", "file:///a", "repo://x"])
        var owners = ResourceOwners(servers: ["github", "files"])
        let conflicts = owners.record(page.claims)
        #expect(conflicts.count == 1 && conflicts[0].contains("goes to \"github\""))
        #expect(owners.owner(of: "repo://x") == "github")
        #expect(owners.owner(of: "file:///a") == "files")
        // Templates, first in file order; a later claim by an earlier server wins the conflict too.
        _ = owners.record([.init(server: "files", uri: "items://{id}", isTemplate: true),
                           .init(server: "github", uri: "items://{id}", isTemplate: true)])
        #expect(owners.owner(of: "items://7") == "github")
        #expect(owners.owner(of: "items://7/8") == nil)
        #expect(owners.owner(of: "nobody://") == nil)
        // A hostile URI against a template of many variables stays cheap (linear, never backtracking).
        _ = owners.record([.init(server: "files", uri: "x://{a}{b}{c}{d}{e}{f}{g}{h}/end", isTemplate: true)])
        #expect(owners.owner(of: "x://" + String(repeating: "a", count: 5_000) + "/nope") == nil)
        #expect(owners.owner(of: "items://" + String(repeating: "7", count: ResourceOwners.longestMatchedURI)) == nil)
    }

    @Test func theHandshakeIsTheUnionAndTheOldestRevision() {
        let answers: [MergedHandshake.Answer] = [
            .init(server: "github", result: [
                "protocolVersion": "2025-11-25", "capabilities": ["tools": ["listChanged": false]], "instructions": "Use issues."]),
            .init(server: "files", result: [
                "protocolVersion": "2025-06-18", "capabilities": ["tools": ["listChanged": true], "resources": ["subscribe": true]]]),
        ]
        let result = MergedHandshake.initializeResult(answers, serverInfo: ["name": "toolgate"], separator: "__")
        #expect(result["protocolVersion"] == "2025-06-18")
        #expect(result["capabilities"]?["tools"]?["listChanged"] == true)
        #expect(result["capabilities"]?["resources"]?["subscribe"] == true)
        let instructions = result["instructions"]?.stringValue ?? ""
        #expect(instructions.contains("github, files") && instructions.contains("[github]\nUse issues.") && !instructions.contains("[files]"))
        let discover = MergedHandshake.discoverResult(
            [.init(server: "a", result: ["supportedVersions": ["2026-07-28", "2027-01-01"]]),
             .init(server: "b", result: ["supportedVersions": ["2026-07-28"]])],
            serverInfo: ["name": "toolgate"], separator: "__")
        #expect(discover["supportedVersions"] == ["2026-07-28"])
    }

    @Test func requestsRouteByNameByRefAndByURI() throws {
        func find(_ json: String) throws -> MergedRoute.Finding {
            let message = try JSONRPCMessage(try JSONParser.parse(json))
            return MergedRoute.find(message, method: message.method!, names: names, owner: { $0 == "repo://x" ? "github" : nil })
        }
        guard case .routed(let call) = try find(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files__read","arguments":{"p":1}}}"#)
        else { Issue.record("not routed"); return }
        #expect(call.server == "files" && call.message["params"]?["name"] == "read" && call.message["params"]?["arguments"]?["p"] == 1)
        guard case .routed(let completion) = try find(
            #"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"github__p"},"argument":{"name":"a","value":""}}}"#)
        else { Issue.record("not routed"); return }
        #expect(completion.server == "github" && completion.message["params"]?["ref"]?["name"] == "p")
        guard case .routed(let read) = try find(#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"repo://x"}}"#)
        else { Issue.record("not routed"); return }
        #expect(read.server == "github")
        guard case .unknownResource("other://y") = try find(#"{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"other://y"}}"#)
        else { Issue.record("expected an unknown resource"); return }
        guard case .refused(let unknown) = try find(#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nobody__x"}}"#)
        else { Issue.record("expected a refusal"); return }
        #expect(unknown.code == .invalidParams && unknown.message.hasPrefix("Unknown tool: nobody__x"))
        guard case .refused(let method) = try find(#"{"jsonrpc":"2.0","id":6,"method":"sampling/createMessage"}"#)
        else { Issue.record("expected a refusal"); return }
        #expect(method.code == .methodNotFound)
    }
}

@Suite struct MergedListenTests {
    let ack = "notifications/subscriptions/acknowledged"

    @Test func oneAcknowledgmentFirstThenEventsThenOneResult() throws {
        var listen = MergedListen(id: 7, servers: ["a", "b"])
        let early: JSONValue = ["jsonrpc": "2.0", "method": "notifications/tools/list_changed"]
        #expect(listen.receive(["jsonrpc": "2.0", "method": .string(ack), "params": ["notifications": ["toolsListChanged": true]]], from: "a").isEmpty)
        // An event of a's before b acknowledged waits behind the merged acknowledgment.
        #expect(listen.receive(early, from: "a").isEmpty)
        let released = listen.receive(
            ["jsonrpc": "2.0", "method": .string(ack), "params": ["notifications": ["promptsListChanged": true, "resourceSubscriptions": ["x://1"]]]],
            from: "b")
        #expect(released.count == 2)
        #expect(released[0]["params"]?["notifications"] == ["toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["x://1"]])
        #expect(released[1] == early)
        #expect(listen.receive(early, from: "b") == [early])
        // Each server's final result is held; one comes at the end.
        #expect(listen.receive(["jsonrpc": "2.0", "id": 7, "result": [:]], from: "a").isEmpty)
        #expect(listen.ended("a").isEmpty && listen.ended("b").isEmpty)
        let end = listen.finish()
        #expect(end.count == 1 && end[0]["id"] == 7 && end[0]["result"] != nil)
    }

    @Test func aServerThatEndsWithoutAcknowledgingDoesNotHoldTheOthersBack() {
        var listen = MergedListen(id: "s", servers: ["a", "b"])
        #expect(listen.receive(["jsonrpc": "2.0", "method": .string(ack), "params": ["notifications": [:]]], from: "a").isEmpty)
        #expect(listen.ended("b").count == 1)
        // Nobody acknowledged at all: the agent learns why.
        var none = MergedListen(id: 1, servers: ["a"])
        #expect(none.ended("a").isEmpty)
        #expect(none.finish().first?["error"]?["code"] == -32603)
    }
}

@Suite struct MergedNameAmbiguityTests {
    @Test func aToolWhoseMergedNameIsAnotherServersIsLeftOut() {
        let names = MergedNames(servers: ["a", "a__b"], separator: "__")
        let page = MergedListPage.merge(
            .tools, pages: [("a", .page(["tools": [["name": "b__x"], ["name": "y"]]])), ("a__b", .page(["tools": [["name": "x"]]]))],
            names: names)
        #expect(page.result["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["a__y", "a__b__x"])
        #expect(page.leftOut.count == 1 && page.leftOut[0].why.contains("another server"))
    }
}
