import Testing
@testable import ToolgateCore

@Suite struct EvaluatorTests {
    let alice = Identity(grant: "alice", session: "s-1", agent: "host-a")

    func evaluator(_ json: String, prefix: String = "toolgate") throws -> Evaluator {
        Evaluator(policy: try Policy.parse(json, file: "p.json"), keyPrefix: prefix)
    }

    @Test func seedPolicyAllowsTheToolWithOneGrantScopedCharge() throws {
        let e = try evaluator(PolicyParsingTests.seed)
        let d = e.evaluate(ToolCall(name: "imageBackgroundRemoval"), identity: alice)
        #expect(d.verdict == .allowed)
        #expect(d.rule == "imageBackgroundRemoval")
        #expect(d.metricTool == "imageBackgroundRemoval")
        let charge = try #require(d.charges.first)
        #expect(d.charges.count == 1)
        #expect(charge.key == "toolgate:{grant:\(CounterKey.subjectHash("alice"))}:imagebackgroundremoval_rate")
        #expect(charge.scope == .grant)
        #expect(charge.max == 10)
        #expect(charge.window.seconds == 60)
        #expect(charge.cost == 1)
        #expect(charge.rule == "imageBackgroundRemoval")
    }

    @Test func seedPolicyTreatsEveryOtherToolAsUnknown() throws {
        let e = try evaluator(PolicyParsingTests.seed)
        let d = e.evaluate(ToolCall(name: "deleteEverything"), identity: alice)
        #expect(d.verdict == .unknownTool)
        #expect(d.rule == nil)
        #expect(d.metricTool == "_other")
        #expect(d.charges.isEmpty)
    }

    @Test func subjectHashIsThe32HexPrefixOfSHA256() {
        // printf alice | sha256sum
        #expect(CounterKey.subjectHash("alice") == "2bd806c97f0e00af1a1fc3328fa763a9")
    }

    @Test func keysFollowTheLayoutForEveryScope() throws {
        let e = try evaluator(
            #"""
            {"version":"1","tools":{"t":{"limits":[
              {"counter":"g","window":"minute","max":3,"scope":"grant"},
              {"counter":"s","window":"minute","max":3,"scope":"session"},
              {"counter":"a","window":"minute","max":3,"scope":"agent"},
              {"counter":"w","window":"minute","max":3,"scope":"global"}]}}}
            """#, prefix: "tg")
        let keys = e.evaluate(ToolCall(name: "t"), identity: alice).charges.map(\.key)
        #expect(keys == [
            "tg:{grant:\(CounterKey.subjectHash("alice"))}:g",
            "tg:{session:\(CounterKey.subjectHash(CounterKey.sessionSubject(grant: "alice", session: "s-1")))}:s",
            "tg:{agent:\(CounterKey.subjectHash("host-a"))}:a",
            "tg:{global:_}:w",
        ])
    }

    @Test func sessionScopeFallsBackToTheGrantWithoutASession() throws {
        let e = try evaluator(
            #"""
            {"version":"1","tools":{"t":{"limits":[
              {"counter":"c","window":"minute","max":3,"scope":"session"},
              {"counter":"c","window":"hour","max":9,"scope":"grant"}]}}}
            """#)
        let sessionless = Identity(grant: "alice", agent: "host-a")
        let charges = e.evaluate(ToolCall(name: "t"), identity: sessionless).charges
        #expect(charges.map(\.scope) == [.grant, .grant])
        // Still two counters: the fallback never shares a key with the grant-scoped one.
        #expect(charges[0].key != charges[1].key)
        // And one grant's sessionless calls share one counter.
        let again = e.evaluate(ToolCall(name: "t"), identity: Identity(grant: "alice", agent: "host-b")).charges
        #expect(again[0].key == charges[0].key)
    }

    @Test func subjectsCannotChangeKeyStructure() throws {
        let e = try evaluator(#"{"version":"1","tools":{"t":{"limits":[{"counter":"c","window":"minute","max":3,"scope":"session"}]}}}"#)
        let hostile = Identity(grant: "g", session: "x}:evil:{", agent: "a")
        let key = try #require(e.evaluate(ToolCall(name: "t"), identity: hostile).charges.first?.key)
        #expect(key == "toolgate:{session:\(CounterKey.subjectHash(CounterKey.sessionSubject(grant: "g", session: "x}:evil:{")))}:c")
        #expect(key.filter { $0 == "{" }.count == 1)
    }

    @Test func hideWinsOverAnyEntry() throws {
        let e = try evaluator(#"{"version":"1","default":"allow","hide":["rm*"],"tools":{"rm_file":{}}}"#)
        #expect(e.evaluate(ToolCall(name: "rm_file"), identity: alice).verdict == .unknownTool)
        #expect(!e.isListed("rm_file"))
    }

    @Test func defaultAllowLetsUnlistedToolsThroughWithWildcardLimits() throws {
        let e = try evaluator(
            #"{"version":"1","default":"allow","tools":{"*":{"limits":[{"counter":"all","window":"1h","max":500,"scope":"global"}]}}}"#)
        let d = e.evaluate(ToolCall(name: "anything"), identity: alice)
        #expect(d.verdict == .allowed)
        #expect(d.rule == nil)
        #expect(d.metricTool == "_other")
        #expect(d.charges.map(\.counter) == ["all"])
        #expect(d.charges.map(\.rule) == ["*"])
        #expect(e.isListed("anything"))
    }

    @Test func wildcardAddsItsLimitsAndArgumentsButNeverLetsAToolIn() throws {
        let e = try evaluator(
            #"""
            {"version":"1","default":"deny","tools":{
              "t":{"limits":[{"counter":"own","window":"minute","max":3}]},
              "*":{"arguments":[{"path":"dry_run","op":"neq","value":false,"reason":"dry_run=false is never allowed"}],
                   "limits":[{"counter":"all","window":"1h","max":500,"scope":"global"}]}}}
            """#)
        let d = e.evaluate(ToolCall(name: "t", arguments: ["dry_run": true]), identity: alice)
        #expect(d.verdict == .allowed)
        #expect(d.charges.map(\.counter) == ["own", "all"])
        #expect(d.charges.map(\.rule) == ["t", "*"])
        let bad = e.evaluate(ToolCall(name: "t", arguments: ["dry_run": false]), identity: alice)
        #expect(bad.verdict == .invalidArguments(message: "dry_run=false is never allowed"))
        #expect(e.evaluate(ToolCall(name: "u"), identity: alice).verdict == .unknownTool)
    }

    @Test func denyActionStaysVisibleAndGivesItsReason() throws {
        let e = try evaluator(#"{"version":"1","tools":{"rm":{"action":"deny","reason":"deleting is for humans"},"ls":{"action":"deny"}}}"#)
        #expect(e.evaluate(ToolCall(name: "rm"), identity: alice).verdict == .denied(message: "deleting is for humans"))
        #expect(e.evaluate(ToolCall(name: "ls"), identity: alice).verdict == .denied(message: "tool ls is not allowed"))
        #expect(e.isListed("rm"))
    }

    @Test func approveActionCarriesSettingsAndLimits() throws {
        let e = try evaluator(
            #"{"version":"1","tools":{"pay":{"action":"approve","approval":{"wait":"5s","ttl":"1h"},"limits":[{"counter":"c","window":"day","max":3}]}}}"#)
        let d = e.evaluate(ToolCall(name: "pay"), identity: alice)
        #expect(d.verdict == .approvalRequired(ApprovalSettings(waitSeconds: 5, ttlSeconds: 3600)))
        #expect(d.charges.count == 1)
    }

    @Test func globEntriesReportTheirKeyAsRule() throws {
        let e = try evaluator(#"{"version":"1","tools":{"image*":{}}}"#)
        let d = e.evaluate(ToolCall(name: "imageResize"), identity: alice)
        #expect(d.rule == "image*")
        #expect(d.metricTool == "image*")
    }

    @Test func costComesFromAnArgument() throws {
        let e = try evaluator(
            #"{"version":"1","tools":{"llm":{"limits":[{"counter":"tokens","window":"day","max":1000,"cost":"args.usage.tokens"}]}}}"#)
        func verdict(_ args: JSONValue) -> Decision { e.evaluate(ToolCall(name: "llm", arguments: args), identity: alice) }
        #expect(verdict(["usage": ["tokens": 250]]).charges.first?.cost == 250)
        #expect(verdict(["usage": ["tokens": 0]]).charges.first?.cost == 0)
        for bad: JSONValue in [["usage": ["tokens": -1]], ["usage": ["tokens": "5"]], ["usage": ["tokens": .number(JSONNumber(literal: "2.5"))]], [:], ["usage": ["tokens": 1001]]] {
            guard case .invalidArguments = verdict(bad).verdict else {
                Issue.record("expected invalid_arguments for \(bad)")
                continue
            }
            #expect(verdict(bad).charges.isEmpty)
        }
    }

    @Test func firstFailingArgumentRuleIsReported() throws {
        let e = try evaluator(
            #"""
            {"version":"1","tools":{"img":{"arguments":[
              {"path":"width","op":"lte","value":4096,"reason":"too large"},
              {"path":"format","op":"in","value":["png","jpeg"]}]}}}
            """#)
        #expect(e.evaluate(ToolCall(name: "img", arguments: ["width": 5000, "format": "gif"]), identity: alice).verdict
            == .invalidArguments(message: "too large"))
        #expect(e.evaluate(ToolCall(name: "img", arguments: ["width": 100, "format": "gif"]), identity: alice).verdict
            == .invalidArguments(message: "argument format must be one of [\"png\",\"jpeg\"]"))
        #expect(e.evaluate(ToolCall(name: "img", arguments: ["width": 100, "format": "png"]), identity: alice).verdict == .allowed)
    }
}

@Suite struct ArgumentRuleTests {
    func rule(_ op: ArgumentRule.Operator, path: String = "a") -> ArgumentRule {
        ArgumentRule(path: path.split(separator: ".").map(String.init), op: op)
    }

    @Test func comparisonOperators() {
        let args: JSONValue = ["a": 5, "s": "hello"]
        #expect(rule(.eq(5)).holds(for: args))
        #expect(!rule(.eq("5")).holds(for: args))
        #expect(rule(.neq(6)).holds(for: args))
        #expect(rule(.in([1, 5])).holds(for: args))
        #expect(!rule(.notIn([1, 5])).holds(for: args))
        #expect(rule(.lt(JSONNumber(6))).holds(for: args))
        #expect(!rule(.lt(JSONNumber(5))).holds(for: args))
        #expect(rule(.lte(JSONNumber(5))).holds(for: args))
        #expect(rule(.gt(JSONNumber(4))).holds(for: args))
        #expect(!rule(.gt(JSONNumber(5))).holds(for: args))
        #expect(rule(.gte(JSONNumber(5))).holds(for: args))
        #expect(!rule(.lt(JSONNumber(9)), path: "s").holds(for: args))
    }

    @Test func stringAndArrayOperators() throws {
        let args: JSONValue = ["s": "hello world", "tags": ["x", "y"], "n": 3]
        #expect(rule(.regex(try CompiledRegex("wor")), path: "s").holds(for: args))
        #expect(!rule(.regex(try CompiledRegex("^world")), path: "s").holds(for: args))
        #expect(!rule(.regex(try CompiledRegex("3")), path: "n").holds(for: args))
        #expect(rule(.contains("lo w"), path: "s").holds(for: args))
        #expect(!rule(.contains("xyz"), path: "s").holds(for: args))
        #expect(rule(.contains("y"), path: "tags").holds(for: args))
        #expect(!rule(.contains("z"), path: "tags").holds(for: args))
        #expect(rule(.maxLength(11), path: "s").holds(for: args))
        #expect(!rule(.maxLength(10), path: "s").holds(for: args))
        #expect(rule(.maxLength(2), path: "tags").holds(for: args))
        #expect(!rule(.maxLength(1), path: "tags").holds(for: args))
        #expect(!rule(.maxLength(100), path: "n").holds(for: args))
    }

    @Test func missingPathFailsEveryOperatorExceptExistsFalse() throws {
        let args: JSONValue = ["other": 1]
        let ops: [ArgumentRule.Operator] = [
            .eq(1), .neq(1), .in([1]), .notIn([1]), .lt(JSONNumber(1)), .lte(JSONNumber(1)), .gt(JSONNumber(1)),
            .gte(JSONNumber(1)), .regex(try CompiledRegex(".*")), .contains("x"), .exists(true), .maxLength(5),
        ]
        for op in ops { #expect(!rule(op).holds(for: args), "\(op)") }
        #expect(rule(.exists(false)).holds(for: args))
        #expect(!rule(.exists(false), path: "other").holds(for: args))
    }

    @Test func pathsReachIntoNestedObjects() {
        let args: JSONValue = ["options": ["size": ["width": 10]]]
        #expect(rule(.eq(10), path: "options.size.width").holds(for: args))
        #expect(!rule(.exists(true), path: "options.size.height").holds(for: args))
        #expect(!rule(.exists(true), path: "options.size.width.deeper").holds(for: args))
    }
}

@Suite struct IdentityTests {
    @Test func changingTheSessionKeepsEverythingElse() throws {
        let policy = try Policy.parse(
            #"{"version":"1","tools":{"t":{"limits":[{"counter":"s","window":"minute","max":3,"scope":"session"},{"counter":"g","window":"minute","max":3}]}}}"#,
            file: "p.json")
        let e = Evaluator(policy: policy)
        let base = Identity(grant: "alice", agent: "host")
        for session: String? in ["s-2", nil] {
            let reused = e.evaluate(ToolCall(name: "t"), identity: base.with(session: session)).charges
            let fresh = e.evaluate(ToolCall(name: "t"), identity: Identity(grant: "alice", session: session, agent: "host")).charges
            #expect(reused == fresh)
        }
    }
}

/// Rules see what the upstream will see (DESIGN.md section 4): the official SDK's servers coerce `"1000"` to
/// 1000, `1` to true and parse a string holding a JSON object, so a rule that compares only same-typed values
/// would let each through.
@Suite struct ArgumentCoercionTests {
    static func rule(_ path: String, _ op: ArgumentRule.Operator) -> ArgumentRule {
        ArgumentRule(path: path.split(separator: ".").map(String.init), op: op)
    }

    static func holds(_ rule: ArgumentRule, _ arguments: String) throws -> Bool {
        rule.holds(for: try JSONParser.parse(Array(arguments.utf8)))
    }

    @Test func negativeOperatorsHoldOnlyForTheirOwnType() throws {
        let neq = Self.rule("amount", .neq(1000))
        #expect(try Self.holds(neq, #"{"amount": 999}"#))
        #expect(try !Self.holds(neq, #"{"amount": 1000.0}"#))
        #expect(try !Self.holds(neq, #"{"amount": "1000"}"#))
        #expect(try !Self.holds(neq, #"{"amount": true}"#))
        #expect(try !Self.holds(neq, #"{"amount": null}"#))
        let notIn = Self.rule("replicas", .notIn([1, 2]))
        #expect(try Self.holds(notIn, #"{"replicas": 3}"#))
        #expect(try !Self.holds(notIn, #"{"replicas": "2"}"#))
        #expect(try !Self.holds(notIn, #"{"replicas": false}"#))
        let notForced = Self.rule("force", .neq(true))
        #expect(try Self.holds(notForced, #"{"force": false}"#))
        #expect(try !Self.holds(notForced, #"{"force": 1}"#))
        #expect(try !Self.holds(notForced, #"{"force": "yes"}"#))
        #expect(try !Self.holds(notForced, #"{"force": "true"}"#))
    }

    @Test func positiveOperatorsFailOnAnotherType() throws {
        #expect(try !Self.holds(Self.rule("n", .eq(1)), #"{"n": "1"}"#))
        #expect(try !Self.holds(Self.rule("n", .in([1, 2])), #"{"n": true}"#))
        #expect(try !Self.holds(Self.rule("n", .lte(JSONNumber(10))), #"{"n": "5"}"#))
        #expect(try !Self.holds(Self.rule("s", .contains("a")), #"{"s": {"a": 1}}"#))
        #expect(try !Self.holds(Self.rule("s", .contains("1")), #"{"s": [1]}"#))
        #expect(try !Self.holds(Self.rule("s", .maxLength(3)), #"{"s": 12}"#))
    }

    @Test func pathsDescendIntoStringsHoldingJSON() throws {
        let noForce = Self.rule("opts.force", .exists(false))
        #expect(try Self.holds(noForce, #"{"opts": {"depth": 1}}"#))
        #expect(try !Self.holds(noForce, #"{"opts": {"force": true}}"#))
        #expect(try !Self.holds(noForce, #"{"opts": "{\"force\": true}"}"#))
        #expect(try !Self.holds(noForce, #"{"opts": " \n{\"force\": true}"}"#))
        let depth = Self.rule("opts.depth", .lte(JSONNumber(3)))
        #expect(try !Self.holds(depth, #"{"opts": "{\"depth\": 9}"}"#))
        #expect(try Self.holds(depth, #"{"opts": "{\"depth\": 2}"}"#))
        // A string that is not JSON is just a string: the path stops there.
        #expect(try Self.holds(noForce, #"{"opts": "force"}"#))
        // One that looks like an object but that toolgate's strict parser refuses (Python's json.loads takes
        // duplicate keys, NaN, lone surrogates): toolgate cannot see what the upstream will, so no rule holds.
        for unreadable in [#"{\"force\": false, \"force\": true}"#, #"{\"force\": true, \"n\": NaN}"#, #"[{\"force\": true}"#] {
            #expect(try !Self.holds(noForce, #"{"opts": "\#(unreadable)"}"#), "\(unreadable)")
            #expect(try !Self.holds(Self.rule("opts.force", .neq(true)), #"{"opts": "\#(unreadable)"}"#))
        }
    }
}
