import Foundation
import Testing
@testable import ToolgateCore

@Suite struct PolicyParsingTests {
    static let seed = #"""
        {"version":"1","default":"deny","tools":{"imageBackgroundRemoval":{"limits":[
          {"counter":"imagebackgroundremoval_rate","window":"minute","max":10,"scope":"grant"}]}}}
        """#

    @Test func seedPolicyMeansWhatItSays() throws {
        let policy = try Policy.parse(Self.seed, file: "seed.json")
        #expect(policy.defaultAction == .deny)
        #expect(policy.entries.count == 1)
        #expect(policy.wildcard == nil)
        let entry = try #require(policy.entry(for: "imageBackgroundRemoval"))
        #expect(entry.action == .allow)
        #expect(entry.arguments.isEmpty)
        let limit = try #require(entry.limits.first)
        #expect(limit.counter == "imagebackgroundremoval_rate")
        #expect(limit.window == Window(seconds: 60, text: "minute"))
        #expect(limit.max == 10)
        #expect(limit.scope == .grant)
        #expect(limit.algorithm == .sliding)
        #expect(limit.cost == .constant(1))
        #expect(limit.shadow == false)
        #expect(policy.isListed("imageBackgroundRemoval"))
        #expect(!policy.isListed("anythingElse"))
    }

    @Test func seedFixtureAndExamplesCheckClean() throws {
        for file in ["examples/seed-policy.json", "examples/policy.json", "examples/policy-servers.json"] {
            let bytes = Array(try Data(contentsOf: Fixture.repositoryRoot.appendingPathComponent(file)))
            #expect(throws: Never.self) { try Policy.parse(bytes, file: file) }
        }
    }

    @Test func theServersExampleNamesEverySectionOfItsPolicy() throws {
        let root = Fixture.repositoryRoot
        let servers = try ServersFile.parse(
            Array(try Data(contentsOf: root.appendingPathComponent("examples/servers.json"))), file: "examples/servers.json",
            environment: ["OPS_TOKEN": "t"])
        let policy = try Policy.parse(
            Array(try Data(contentsOf: root.appendingPathComponent("examples/policy-servers.json"))), file: "examples/policy-servers.json")
        #expect(Set(policy.sections.keys) == Set(servers.servers.map(\.name)))
    }

    @Test func hashIsTheSHA256OfTheBytes() throws {
        let policy = try Policy.parse(#"{"version":"1"}"#, file: "p.json")
        // printf '{"version":"1"}' | sha256sum
        #expect(policy.sha256 == "aa5bc61f44d5f633935d04cbccf2654c56806fc924b0083a6cb6b7545369ad64")
    }

    @Test func defaultIsDenyWhenAbsent() throws {
        #expect(try Policy.parse(#"{"version":"1"}"#, file: "p.json").defaultAction == .deny)
        #expect(try Policy.parse(#"{"version":"1","default":"allow"}"#, file: "p.json").defaultAction == .allow)
    }

    @Test(arguments: [
        (#""second""#, 1, "second"), (#""minute""#, 60, "minute"), (#""hour""#, 3600, "hour"),
        (#""day""#, 86400, "day"), ("45", 45, "45s"), (#""90s""#, 90, "90s"), (#""15m""#, 900, "15m"),
        (#""2h""#, 7200, "2h"), (#""1d""#, 86400, "1d"),
    ])
    func everyWindowForm(json: String, seconds: Int, text: String) throws {
        let policy = try Policy.parse(
            #"{"version":"1","tools":{"t":{"limits":[{"counter":"c","window":\#(json),"max":3}]}}}"#, file: "p.json")
        let window = try #require(policy.entry(for: "t")?.limits.first?.window)
        #expect(window.seconds == seconds)
        #expect(window.text == text)
    }

    @Test func everyScopeAlgorithmCostAndShadow() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{"t":{"limits":[
              {"counter":"a","window":"minute","max":3,"scope":"grant","algorithm":"sliding"},
              {"counter":"b","window":"minute","max":3,"scope":"session","algorithm":"fixed","cost":2},
              {"counter":"c","window":"minute","max":3,"scope":"agent","algorithm":"token_bucket","shadow":true},
              {"counter":"d","window":"minute","max":300,"scope":"global","cost":"args.usage.tokens"}
            ]}}}
            """#, file: "p.json")
        let limits = try #require(policy.entry(for: "t")?.limits)
        #expect(limits.map(\.scope) == [.grant, .session, .agent, .global])
        #expect(limits.map(\.algorithm) == [.sliding, .fixed, .tokenBucket, .sliding])
        #expect(limits.map(\.cost) == [.constant(1), .constant(2), .constant(1), .argument(path: ["usage", "tokens"])])
        #expect(limits.map(\.shadow) == [false, false, true, false])
    }

    @Test func actionsReasonsAndApproval() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{
              "a":{"action":"allow"},
              "d":{"action":"deny","reason":"no"},
              "p":{"action":"approve","approval":{"wait":"0s","ttl":"2h"}},
              "q":{"action":"approve"}
            }}
            """#, file: "p.json")
        #expect(policy.entry(for: "a")?.action == .allow)
        #expect(policy.entry(for: "d")?.action == .deny)
        #expect(policy.entry(for: "d")?.reason == "no")
        #expect(policy.entry(for: "p")?.approval == ApprovalSettings(waitSeconds: 0, ttlSeconds: 7200))
        #expect(policy.entry(for: "q")?.approval == .default)
    }

    @Test func exactNameWinsThenMoreLiteralCharactersThenLongerPrefixThenByteOrder() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{
              "image*":{}, "imageBackground*":{}, "imageBackgroundRemoval":{}, "*Removal":{},
              "a*b":{}, "ab*":{}, "x*y*":{}, "x*z*":{}
            }}
            """#, file: "p.json")
        #expect(policy.entry(for: "imageBackgroundRemoval")?.key == "imageBackgroundRemoval")
        #expect(policy.entry(for: "imageBackgroundBlur")?.key == "imageBackground*")
        #expect(policy.entry(for: "imageResize")?.key == "image*")
        #expect(policy.entry(for: "fooRemoval")?.key == "*Removal")
        // "*Removal" (7 literal characters) beats "image*" (5) for a name both match.
        #expect(policy.entry(for: "imageRemoval")?.key == "*Removal")
        // Equal literal counts: the longer literal prefix wins.
        #expect(policy.entry(for: "abb")?.key == "ab*")
        // Equal counts and prefixes: byte order.
        #expect(policy.entry(for: "xyz")?.key == "x*y*")
        #expect(policy.entry(for: "other") == nil)
    }

    @Test func globsMatchOnlyAtStars() {
        #expect(ToolPattern("a*c").matches("abc"))
        #expect(ToolPattern("a*c").matches("ac"))
        #expect(!ToolPattern("a*c").matches("abd"))
        #expect(ToolPattern("*").matches(""))
        #expect(ToolPattern("a*b*c").matches("a-b-c"))
        #expect(!ToolPattern("a*b*c").matches("a-c-b"))
        #expect(!ToolPattern("aa*aa").matches("aaa"))
        #expect(ToolPattern("a.b").matches("a.b"))
        #expect(!ToolPattern("a.b").matches("axb"))
        #expect(ToolPattern("get_?").matches("get_?"))
        #expect(!ToolPattern("get_?").matches("get_x"))
    }

    @Test func hideAcceptsGlobsAndWinsOverEntries() throws {
        let policy = try Policy.parse(
            #"{"version":"1","default":"allow","hide":["delete_*","drop"],"tools":{"delete_repo":{},"drop":{"action":"deny"}}}"#,
            file: "p.json")
        #expect(!policy.isListed("delete_repo"))
        #expect(!policy.isListed("drop"))
        #expect(policy.isListed("create_repo"))
    }

    @Test func deniedToolsStayListed() throws {
        let policy = try Policy.parse(#"{"version":"1","tools":{"rm":{"action":"deny","reason":"no"}}}"#, file: "p.json")
        #expect(policy.isListed("rm"))
    }

    @Test func wildcardNeverLetsAToolIn() throws {
        let policy = try Policy.parse(
            #"{"version":"1","default":"deny","tools":{"*":{"limits":[{"counter":"all","window":"1h","max":5,"scope":"global"}]}}}"#,
            file: "p.json")
        #expect(policy.wildcard != nil)
        #expect(policy.entries.isEmpty)
        #expect(!policy.isListed("anything"))
    }

    @Test func sameCounterInDifferentScopesIsTwoCounters() throws {
        #expect(throws: Never.self) {
            try Policy.parse(
                #"""
                {"version":"1","tools":{"t":{"limits":[
                  {"counter":"c","window":"minute","max":3,"scope":"grant"},
                  {"counter":"c","window":"hour","max":9,"scope":"global"}]}}}
                """#, file: "p.json")
        }
    }

    @Test func sameCounterInSameScopeMayBeSharedWhenDefinitionsAgree() throws {
        #expect(throws: Never.self) {
            try Policy.parse(
                #"""
                {"version":"1","tools":{
                  "a":{"limits":[{"counter":"c","window":"minute","max":3}]},
                  "b":{"limits":[{"counter":"c","window":60,"max":3,"cost":2,"shadow":true}]}}}
                """#, file: "p.json")
        }
    }

    @Test func argumentOperatorsAllParse() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{"t":{"arguments":[
              {"path":"a","op":"eq","value":1},
              {"path":"a","op":"neq","value":"x"},
              {"path":"a","op":"in","value":[1,2]},
              {"path":"a","op":"not_in","value":[3]},
              {"path":"a","op":"lt","value":9},
              {"path":"a","op":"lte","value":9},
              {"path":"a","op":"gt","value":0},
              {"path":"a","op":"gte","value":0},
              {"path":"s","op":"regex","value":"^[a-z]+$"},
              {"path":"s","op":"contains","value":"b"},
              {"path":"s","op":"exists"},
              {"path":"z","op":"exists","value":false},
              {"path":"s","op":"max_length","value":10,"reason":"too long"}
            ]}}}
            """#, file: "p.json")
        #expect(policy.entry(for: "t")?.arguments.count == 13)
    }

    @Test func yamlPoliciesParseByExtension() throws {
        let yaml = """
            version: "1"
            default: deny
            hide: [secret_*]
            tools:
              imageBackgroundRemoval:
                arguments:
                  - {path: width, op: lte, value: 4096}
                limits:
                  - counter: imagebackgroundremoval_rate
                    window: minute
                    max: 10
                    scope: grant
                    shadow: false
            """
        for file in ["p.yaml", "p.YML"] {
            let policy = try Policy.parse(yaml, file: file)
            #expect(policy.entry(for: "imageBackgroundRemoval")?.limits.first?.max == 10)
            #expect(policy.isHidden("secret_x"))
        }
        // The same text is not JSON.
        #expect(throws: PolicyValidationError.self) { try Policy.parse(yaml, file: "p.json") }
    }

    @Test func yamlTypesAreCheckedLikeJSON() throws {
        let error = try #require(throws: PolicyValidationError.self) {
            try Policy.parse("version: 1\ntools: {t: {limits: [{counter: c, window: minute, max: \"10\"}]}}\n", file: "p.yaml")
        }
        #expect(error.errors.map(\.description) == [
            "p.yaml: tools.t.limits[0].max: must be an integer of 1 or more, got \"10\""
        ])
    }

    /// Issue 23: people write `version: 1` in YAML, which is the integer 1; JSON's `1` is accepted alike. Only 1.
    @Test func versionMayBeTheInteger1InBothFormats() throws {
        #expect(throws: Never.self) { try Policy.parse("version: 1\ndefault: deny\n", file: "p.yaml") }
        #expect(throws: Never.self) { try Policy.parse("version: \"1\"\n", file: "p.yml") }
        #expect(throws: Never.self) { try Policy.parse(#"{"version": 1, "default": "deny"}"#, file: "p.json") }
        for (text, file) in [("version: 2\n", "p.yaml"), (#"{"version": 1.0}"#, "p.json"), (#"{"version": 2}"#, "p.json"), (#"{"version": true}"#, "p.json")] {
            let error = try #require(throws: PolicyValidationError.self) { try Policy.parse(text, file: file) }
            #expect(error.errors.map(\.description) == ["\(file): version: must be \"1\""])
        }
    }

    /// Issue 23: `"optional": true` lets a call that leaves the argument out through (the server's default applies)
    /// and judges a present value as usual, type rules included; without it an absent path fails.
    @Test func optionalRulesHoldWhenThePathIsAbsent() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{
              "search_notes":{"arguments":[{"path":"limit","op":"lte","value":50,"optional":true},{"path":"query","op":"max_length","value":20}]},
              "strict_search":{"arguments":[{"path":"limit","op":"lte","value":50,"optional":false}]},
              "nested":{"arguments":[{"path":"opts.depth","op":"in","value":[1,2],"optional":true}]}}}
            """#, file: "p.json")
        let evaluator = Evaluator(policy: policy)
        func verdict(_ tool: String, _ arguments: String) throws -> Decision.Verdict {
            evaluator.evaluate(
                ToolCall(name: tool, arguments: try JSONParser.parse(Array(arguments.utf8))),
                identity: Identity(grant: "g", session: nil, agent: "a")
            ).verdict
        }
        #expect(try verdict("search_notes", #"{"query":"swift"}"#) == .allowed)
        #expect(try verdict("search_notes", #"{"query":"swift","limit":10}"#) == .allowed)
        #expect(try verdict("search_notes", #"{"query":"swift","limit":51}"#) != .allowed)
        #expect(try verdict("search_notes", #"{"query":"swift","limit":"10"}"#) != .allowed, "a present value keeps the type rules")
        #expect(try verdict("search_notes", #"{"query":"swift","limit":null}"#) != .allowed, "null is present")
        #expect(try verdict("search_notes", #"{"limit":10}"#) != .allowed, "rules without optional still need their path")
        #expect(try verdict("strict_search", #"{}"#) != .allowed)
        #expect(try verdict("nested", #"{}"#) == .allowed)
        #expect(try verdict("nested", #"{"opts":{}}"#) == .allowed)
        #expect(try verdict("nested", #"{"opts":{"depth":3}}"#) != .allowed)
        #expect(try verdict("nested", #"{"opts":"{\"depth\":3}"}"#) != .allowed, "paths still descend into JSON in strings")
        #expect(try verdict("nested", #"{"opts":"{\"depth\":"}"#) != .allowed, "an unreadable path is not an absent one")
    }
    /// Ten lines of nested aliases stand for 10^10 nodes. Composed and converted, this never ended (and an alias used
    /// as a mapping key was hashed node by node inside Yams); it is refused, with where, before anything is built.
    @Test(.timeLimit(.minutes(1)), arguments: [
        ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n", "*a"),
        ("a0: &a0 {k: [x, x, x, x, x, x, x, x, x, x]}\n", "? *a"),
    ])
    func yamlAliasesAreRefusedBeforeTheyExpand(first: String, use: String) throws {
        var yaml = first
        for i in 1...10 {
            yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        yaml += "k:\n  \(use)10 : v\n"
        for file in ["policy.yaml", "grants.yaml"] {
            let error = try #require(throws: PolicyValidationError.self) {
                if file == "policy.yaml" { _ = try Policy.parse(yaml, file: file) }
                else { _ = try GrantTable.parse(Array(yaml.utf8), file: file, environment: [:]) }
            }
            #expect(error.errors.map(\.description) == ["\(file): invalid YAML: line 2, column 10: aliases are not supported"])
        }
        // An anchor that nothing refers to expands nothing and is accepted.
        #expect(throws: Never.self) { try Policy.parse("version: \"1\"\ntools: &t {x: {}}\n", file: "p.yaml") }
    }
}
