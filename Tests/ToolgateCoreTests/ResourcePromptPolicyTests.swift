import Testing
@testable import ToolgateCore

/// The `resources` and `prompts` sections: parsing and its errors, the access rules, list filtering, and the
/// answers that stand in for a refused read or get.
@Suite struct ResourcePromptPolicyTests {
    static let policy = try! Policy.parse(
        #"""
        {"version":"1","default":"deny","tools":{},
         "resources":{"default":"deny","allow":["file:///srv/docs/*","test://static/*"],"hide":["secret://*"],"deny":["test://static/private*"]},
         "prompts":{"default":"allow","deny":["internal_*"]}}
        """#, file: "p.json")

    @Test func accessRules() throws {
        let resources = try #require(Self.policy.resources)
        #expect(resources.allows("test://static/readme"))
        #expect(resources.allows("file:///srv/docs/a/b.md"))
        #expect(!resources.allows("test://static/private-notes"))
        #expect(!resources.allows("secret://keys"))
        #expect(!resources.allows("test://items/{item_id}"))
        let prompts = try #require(Self.policy.prompts)
        #expect(prompts.allows("summarize") && !prompts.allows("internal_debug"))
        #expect(try Policy.parse(#"{"version":"1","tools":{}}"#, file: "x.json").resources == nil)
    }

    @Test(arguments: [
        (#"{"resources":{"allow":["a"]}}"#, "p.json: resources.default: required; \"allow\" or \"deny\""),
        (#"{"resources":{"default":"maybe"}}"#, "p.json: resources.default: must be \"allow\" or \"deny\", got \"maybe\""),
        (#"{"prompts":{"default":"allow","block":["x"]}}"#, "p.json: prompts.block: unknown key"),
        (#"{"prompts":{"default":"allow","deny":[""]}}"#, "p.json: prompts.deny[0]: must not be empty"),
    ])
    func sectionErrorsNameTheirPath(section: String, expected: String) {
        let text = #"{"version":"1","tools":{},"# + section.dropFirst()
        #expect {
            _ = try Policy.parse(String(text), file: "p.json")
        } throws: { error in
            (error as? PolicyValidationError)?.errors.contains { $0.description.hasPrefix(expected) } == true
        }
    }

    @Test func listsLoseWhatThePolicyKeepsOutAndItemsWithoutANameFailClosed() throws {
        let filter = ToolListFilter(policy: Self.policy)
        let answer: JSONValue = try JSONParser.parse(#"""
            [{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"test://static/readme"},{"uri":"secret://keys"},{"name":"no uri"}]}},
             {"jsonrpc":"2.0","id":2,"result":{"resourceTemplates":[{"uriTemplate":"test://items/{item_id}"},{"uriTemplate":"test://static/{x}"}]}},
             {"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"summarize"},{"name":"internal_debug"}]}}]
            """#)
        let filtered = try #require(filter.filter(body: answer))
        #expect(JSONWriter.string(filtered) == #"[{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"test://static/readme"}]}},{"jsonrpc":"2.0","id":2,"result":{"resourceTemplates":[{"uriTemplate":"test://static/{x}"}]}},{"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"summarize"}]}}]"#)
        #expect(filter.mayContainList(Array(#"{"result":{"prompts":[]}}"#.utf8)))
        #expect(!ToolListFilter(isListed: { _ in true }).mayContainList(Array(#"{"result":{"prompts":[]}}"#.utf8)))
    }

    static func message(_ json: String) throws -> JSONRPCMessage {
        guard case .single(let m) = try JSONRPCBody.parse(Array(json.utf8)) else { throw JSONRPCFailure(.invalidRequest, "batch") }
        return m
    }

    static let templates = try! Policy.parse(
        #"""
        {"version":"1","tools":{},
         "resources":{"default":"deny","allow":["file:///{path}","secret://{name}/token"],"hide":["secret://{name}/token"]},
         "prompts":{"default":"allow","deny":["internal_*"]}}
        """#, file: "p.json")

    @Test func hidingATemplateHidesEveryURIItProducesAndBeatsAllowingIt() throws {
        let resources = try #require(Self.templates.resources)
        #expect(!resources.allows("secret://alice/token"))
        #expect(!resources.allows("secret://{name}/token"))
        #expect(!resources.allows("secret://{user}/token"))
        #expect(resources.allows("file:///readme.md"))
        #expect(resources.allows("file:///{path}"))
        #expect(!resources.allows("file:///etc/passwd"))
        // Prompt names are plain globs: braces are literal there.
        let prompts = try #require(Policy.parse(
            #"{"version":"1","tools":{},"prompts":{"default":"allow","hide":["p{x}"]}}"#, file: "p.json").prompts)
        #expect(prompts.allows("pa") && !prompts.allows("p{x}"))
    }

    /// Every request that names what the policy keeps out is judged: reads, subscriptions, gets and completions.
    @Test(arguments: [
        (#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://alice/token"}}"#, ["secret://alice/token"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"secret://alice/token"}}"#, ["secret://alice/token"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":"secret://bob/token"}}"#, ["secret://bob/token"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"internal_debug"}}"#, ["internal_debug"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"internal_debug"},"argument":{"name":"a","value":""}}}"#, ["internal_debug"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"secret://{name}/token"},"argument":{"name":"name","value":"a"}}}"#, ["secret://{name}/token"]),
        // A reference is judged by the fields it has, whatever its type claims.
        (#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize","uri":"secret://x/token"}}}"#, ["secret://x/token"]),
        (#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize"}}}"#, []),
        (#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///readme.md"}}"#, []),
        (#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, []),
    ])
    func requestsNamingWhatIsKeptOutAreJudged(json: String, keptOut: [String]) throws {
        let judgement = ResourceAndPromptGate.judge(try Self.message(json), policy: Self.templates)
        #expect(judgement.keptOut.map(\.name) == keptOut)
    }

    @Test func malformedNamesAreAnsweredAndNoSectionMeansNoJudgement() throws {
        let bad = try Self.message(#"{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":42}}"#)
        guard case .answer(let answer) = ResourceAndPromptGate.judge(bad, policy: Self.templates) else {
            Issue.record("a non-string uri was not answered")
            return
        }
        #expect(answer["error"]?["code"] == -32602)
        let noSections = try Policy.parse(#"{"version":"1","tools":{}}"#, file: "x.json")
        let read = try Self.message(#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://keys"}}"#)
        #expect(ResourceAndPromptGate.judge(read, policy: noSections) == .pass)
    }

    /// The request goes upstream about a random stand-in in the same scheme; the answer gets the agent's name back
    /// wherever it echoes the stand-in, and a success for a read of the stand-in never reaches the agent.
    @Test func aKeptOutNameIsAskedAboutAsAnAbsentOneAndPutBack() throws {
        let read = try Self.message(#"{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"secret://alice/token"}}"#)
        let judgement = ResourceAndPromptGate.judge(read, policy: Self.templates)
        let (request, probe) = AbsentNameProbe.probe(read, method: "resources/read", keptOut: judgement.keptOut, tokens: { "tok123" })
        #expect(request["params"]?["uri"] == "secret://tok123")
        #expect(!JSONWriter.string(request).contains("alice"))
        #expect(probe.nameHeader(replacing: "secret://alice/token") == "secret://tok123")
        #expect(probe.nameHeader(replacing: "=?base64?c2VjcmV0Oi8vYWxpY2UvdG9rZW4=?=") == "secret://tok123")
        #expect(probe.nameHeader(replacing: "secret://other") == String?.none)
        let upstream: JSONValue = try JSONParser.parse(
            #"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown resource: secret://tok123","data":{"uri":"secret://tok123","t":"tok123"}}}"#)
        #expect(probe.restore(upstream) == (try JSONParser.parse(
            #"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown resource: secret://alice/token","data":{"uri":"secret://alice/token","t":"alice/token"}}}"#)))
        let success: JSONValue = try JSONParser.parse(#"{"jsonrpc":"2.0","id":7,"result":{"contents":[{"uri":"secret://tok123","text":"x"}]}}"#)
        #expect(probe.restore(success)?["error"]?["code"] == -32002)
        #expect(probe.restore(["jsonrpc": "2.0", "id": 8, "result": [:]]) == JSONValue?.none)

        let complete = try Self.message(
            #"{"jsonrpc":"2.0","id":"c","method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"internal_debug"},"argument":{"name":"a","value":""}}}"#)
        let (stand, promptProbe) = AbsentNameProbe.probe(
            complete, method: "completion/complete", keptOut: ResourceAndPromptGate.judge(complete, policy: Self.templates).keptOut,
            tokens: { "zz9" })
        #expect(stand["params"]?["ref"]?["name"] == "zz9" && stand["params"]?["argument"]?["name"] == "a")
        // A completion's success passes (it is what the upstream says for an unknown prompt), names put back.
        let values: JSONValue = ["jsonrpc": "2.0", "id": "c", "result": ["completion": ["values": ["zz9-a"]]]]
        #expect(promptProbe.restore(values)?["result"]?["completion"]?["values"] == ["internal_debug-a"])
    }

    @Test func anMcpNameHeaderNamingWhatIsKeptOutGetsAStandIn() throws {
        let read = try Self.message(#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a.md"}}"#)
        func standIn(_ header: String?, _ message: JSONRPCMessage) -> String? {
            ResourceAndPromptGate.nameHeaderStandIn(message, header: header, policy: Self.templates, token: { "t0" })
        }
        #expect(standIn("secret://alice/token", read) == "secret://t0")
        #expect(standIn("=?base64?c2VjcmV0Oi8vYWxpY2UvdG9rZW4=?=", read) == "secret://t0")
        #expect(standIn("file:///a.md", read) == String?.none)
        #expect(standIn(nil, read) == String?.none)
        let get = try Self.message(#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}"#)
        #expect(standIn("internal_x", get) == "t0")
        #expect(standIn("summarize", get) == String?.none)
    }

    @Test(arguments: [("secret://alice/token", "secret://"), ("urn:isbn:1", "urn:"), ("no scheme", ""), ("1x://a", ""), ("a+b.c-d:x", "a+b.c-d:")])
    func standInsKeepTheScheme(uri: String, prefix: String) {
        #expect(AbsentNameProbe.schemePrefix(of: uri) == prefix)
    }

    @Test func theRelayPutsNamesBackInJSONAndEventStreams() throws {
        let read = try Self.message(#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"internal_x"}}"#)
        let (_, probe) = AbsentNameProbe.probe(
            read, method: "prompts/get", keptOut: ResourceAndPromptGate.judge(read, policy: Self.templates).keptOut, tokens: { "q1" })
        let plan = ResponseRelay.Plan(requestIDs: [1], probes: [probe])
        let answer = Array(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown prompt: q1"}}"#.utf8)
        var json = ResponseRelay(plan: plan, status: 200, contentType: "application/json", filter: ToolListFilter(policy: Self.templates))
        _ = try json.receive(answer)
        #expect(String(decoding: json.finish().bytes, as: UTF8.self) == #"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown prompt: internal_x"}}"#)
        var stream = ResponseRelay(plan: plan, status: 200, contentType: "text/event-stream", filter: ToolListFilter(policy: Self.templates))
        let out = try stream.receive(Array("event: message\ndata: ".utf8) + answer + Array("\n\n".utf8))
        #expect(String(decoding: out, as: UTF8.self).contains("Unknown prompt: internal_x"))
        #expect(!String(decoding: out, as: UTF8.self).contains("q1"))
    }
}
