import Testing
@testable import ToolgateCore

/// The policy held against a server's tool list: typos, globs that match nothing, argument and cost paths that are
/// not arguments, tools no entry covers.
@Suite struct PolicyCoverageTests {
    static let tools = [
        PolicyCoverage.UpstreamTool(
            name: "imageBackgroundRemoval",
            inputSchema: ["type": "object", "properties": ["image": ["type": "string"]], "required": ["image"]]),
        PolicyCoverage.UpstreamTool(name: "transfer", inputSchema: ["properties": ["amount": [:], "currency": [:]]]),
        PolicyCoverage.UpstreamTool(name: "debug_dump", inputSchema: nil),
    ]

    static func warnings(_ json: String) throws -> [String] {
        PolicyCoverage.warnings(policy: try Policy.parse(json, file: "p.json"), file: "p.json", tools: tools)
    }

    @Test func aPolicyThatFitsHasNothingToSay() throws {
        let w = try Self.warnings(#"""
            {"version":"1","default":"deny","hide":["debug_*"],"tools":{
              "imageBackgroundRemoval":{"arguments":[{"path":"image","op":"max_length","value":100}]},
              "transfer":{"limits":[{"counter":"spend","window":"day","max":1000,"cost":"args.amount"}]}}}
            """#)
        #expect(w.isEmpty, "\(w)")
    }

    @Test func aTypoIsNamedWithTheToolItMeant() throws {
        let w = try Self.warnings(#"{"version":"1","default":"deny","tools":{"imageBackgroundRemovel":{},"transfer":{},"debug_dump":{}}}"#)
        #expect(w == [#"p.json: tools.imageBackgroundRemovel: the upstream has no tool "imageBackgroundRemovel" (did you mean "imageBackgroundRemoval"?)"#,
                      #"p.json: no entry covers the upstream's tools "imageBackgroundRemoval"; default deny hides them"#])
    }

    @Test func globsAndPathsThatMatchNothing() throws {
        let w = try Self.warnings(#"""
            {"version":"1","default":"allow","tools":{
              "image*":{"arguments":[{"path":"imgae","op":"exists","value":true}]},
              "pay*":{},
              "transfer":{"limits":[{"counter":"spend","window":"day","max":1000,"cost":"args.amout"}]}}}
            """#)
        #expect(w.contains(#"p.json: tools.image*.arguments[0].path: "imgae" is not an argument of imageBackgroundRemoval (its inputSchema has "image")"#))
        #expect(w.contains("p.json: tools.pay*: matches none of the upstream's tools"))
        #expect(w.contains(#"p.json: tools.transfer.limits[0].cost: "amout" is not an argument of transfer (its inputSchema has "amount", "currency")"#))
        #expect(w.contains(#"p.json: no entry covers the upstream's tools "debug_dump"; default allow lets them through unchecked"#))
        #expect(w.count == 4)
    }

    /// Issue 23: `limit lte 50` on a tool whose `limit` the server defaults denies every call that leaves it out.
    @Test func aRuleOnAnArgumentTheServerDoesNotRequireSuggestsOptional() throws {
        let searchNotes = PolicyCoverage.UpstreamTool(
            name: "search_notes",
            inputSchema: [
                "type": "object",
                "properties": ["query": ["type": "string"], "limit": ["type": "integer"], "filter": ["type": "object", "properties": ["tag": [:]]]],
                "required": ["query", "filter"],
            ])
        func warnings(_ rules: String) throws -> [String] {
            let policy = try Policy.parse(#"{"version":"1","tools":{"search_notes":{"arguments":[\#(rules)]}}}"#, file: "p.json")
            return PolicyCoverage.warnings(policy: policy, file: "p.json", tools: [searchNotes])
        }
        #expect(
            try warnings(#"{"path":"limit","op":"lte","value":50}"#) == [
                #"p.json: tools.search_notes.arguments[0].path: "limit" is not in search_notes's required arguments, so a call that leaves it out is denied; add "optional": true to judge it only when present"#
            ])
        #expect(
            try warnings(#"{"path":"query","op":"max_length","value":9},{"path":"filter.tag","op":"eq","value":"x"}"#) == [
                #"p.json: tools.search_notes.arguments[1].path: "filter.tag" is not in search_notes's required arguments, so a call that leaves it out is denied; add "optional": true to judge it only when present"#
            ])
        #expect(try warnings(#"{"path":"limit","op":"lte","value":50,"optional":true},{"path":"query","op":"max_length","value":9}"#).isEmpty)
        #expect(try warnings(#"{"path":"limit","op":"exists","value":false}"#).isEmpty)
    }

    @Test func closestNameNeedsToBeClose() {
        #expect(NameSuggestion.closest(to: "transfr", among: ["transfer", "scale"]) == "transfer")
        #expect(NameSuggestion.closest(to: "zzz", among: ["transfer", "scale"]) == nil)
        #expect(NameSuggestion.closest(to: "id", among: ["op", "path"]) == nil, "a name sharing nothing is no misspelling")
        #expect(
            NameSuggestion.unknownKeyMessage("acton", allowed: ["reason", "action"])
                == #"unknown key "acton" (did you mean "action"?); expected one of: action, reason"#)
        #expect(NameSuggestion.editDistance(Array("kitten".unicodeScalars), Array("sitting".unicodeScalars)) == 3)
        #expect(NameSuggestion.editDistance([], Array("ab".unicodeScalars)) == 2)
    }
}
