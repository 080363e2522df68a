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

    @Test func refusedReadsAndGetsLookUnknown() throws {
        func message(_ json: String) throws -> JSONRPCMessage {
            guard case .single(let m) = try JSONRPCBody.parse(Array(json.utf8)) else { throw JSONRPCFailure(.invalidRequest, "batch") }
            return m
        }
        let read = try message(#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://keys"}}"#)
        #expect(ResourceAndPromptGate.refusal(for: read, policy: Self.policy) == [
            "jsonrpc": "2.0", "id": 1, "error": ["code": -32002, "message": "Resource not found", "data": ["uri": "secret://keys"]],
        ])
        let allowed = try message(#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"test://static/readme"}}"#)
        #expect(ResourceAndPromptGate.refusal(for: allowed, policy: Self.policy) == nil)
        let get = try message(#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"internal_x"}}"#)
        #expect(ResourceAndPromptGate.refusal(for: get, policy: Self.policy)?["error"]?["message"] == "Unknown prompt: internal_x")
        let noSections = try Policy.parse(#"{"version":"1","tools":{}}"#, file: "x.json")
        #expect(ResourceAndPromptGate.refusal(for: read, policy: noSections) == nil)
    }
}
