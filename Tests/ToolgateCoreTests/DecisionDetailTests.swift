import Testing

@testable import ToolgateCore

/// The audit log's `detail` (DESIGN.md section 8) comes from the evaluator: which rule decided a refusal, by index
/// and text, while the agent's denial text stays what it was.
@Suite struct DecisionDetailTests {
    let alice = Identity(grant: "alice", session: "s-1", agent: "host-a")

    func evaluator(_ json: String) throws -> Evaluator {
        Evaluator(policy: try Policy.parse(json, file: "p.json"))
    }

    @Test func aFailingArgumentRuleIsNamedByIndexAndText() throws {
        let e = try evaluator(
            #"""
            {"version":"1","tools":{"pay":{"arguments":[
              {"path":"currency","op":"in","value":["EUR","USD"]},
              {"path":"amount","op":"lte","value":500,"reason":"at most 500 per payment"},
              {"path":"memo","op":"regex","value":"^[a-z ]*$"}]},
             "*":{"arguments":[{"path":"token","op":"exists","value":false}]}}}
            """#)
        let tooMuch = e.evaluate(ToolCall(name: "pay", arguments: ["currency": "EUR", "amount": 900]), identity: alice)
        #expect(tooMuch.verdict == .invalidArguments(message: "at most 500 per payment"), "the agent's text is unchanged")
        #expect(tooMuch.detail == .argumentRule(entry: "pay", index: 1, rule: "amount lte 500"))
        #expect(tooMuch.detail?.text(ruleOfCall: tooMuch.rule) == "arguments[1]: amount lte 500")

        let currency = e.evaluate(ToolCall(name: "pay", arguments: ["currency": "GBP", "amount": 1]), identity: alice)
        #expect(currency.detail?.text(ruleOfCall: currency.rule) == #"arguments[0]: currency in ["EUR","USD"]"#)
        let memo = e.evaluate(ToolCall(name: "pay", arguments: ["currency": "EUR", "amount": 1, "memo": "X"]), identity: alice)
        #expect(memo.detail?.text(ruleOfCall: memo.rule) == #"arguments[2]: memo regex "^[a-z ]*$""#)

        // The additive entry's rule says whose it is: `rule` names the tool's own entry.
        let token = e.evaluate(ToolCall(name: "pay", arguments: ["currency": "EUR", "amount": 1, "memo": "ok", "token": "t"]), identity: alice)
        #expect(token.rule == "pay")
        #expect(token.detail?.text(ruleOfCall: token.rule) == #""*" arguments[0]: token exists false"#)

        #expect(e.evaluate(ToolCall(name: "pay", arguments: ["currency": "EUR", "amount": 1, "memo": "ok"]), identity: alice).detail == nil)
    }

    @Test func hiddenUnknownDeniedAndCostRefusalsSayWhatDecided() throws {
        let e = try evaluator(
            #"""
            {"version":"1","hide":["debug_*"],"tools":{
              "debug_dump":{},
              "rm":{"action":"deny","reason":"never"},
              "llm":{"limits":[{"counter":"tokens","window":"day","max":1000,"cost":"args.usage.tokens"}]}}}
            """#)
        let hidden = e.evaluate(ToolCall(name: "debug_dump"), identity: alice)
        #expect(hidden.verdict == .unknownTool && hidden.rule == nil && hidden.detail == .hidden)
        #expect(hidden.detail?.text(ruleOfCall: nil) == "hidden")
        let unknown = e.evaluate(ToolCall(name: "other"), identity: alice)
        #expect(unknown.verdict == .unknownTool && unknown.rule == nil && unknown.detail == .noEntry)
        let denied = e.evaluate(ToolCall(name: "rm"), identity: alice)
        #expect(denied.verdict == .denied(message: "never") && denied.detail == .entryDenies)
        let cost = e.evaluate(ToolCall(name: "llm", arguments: ["usage": ["tokens": 5000]]), identity: alice)
        #expect(cost.detail == .cost(counter: "tokens", path: "usage.tokens"))
        #expect(cost.detail?.text(ruleOfCall: cost.rule) == "limit tokens: cost args.usage.tokens")
    }
}
