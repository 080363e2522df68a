import Testing
@testable import ToolgateCore

/// The policy held against a server's tool list: typos, globs that match nothing, argument and cost paths that are
/// not arguments, tools no entry covers.
@Suite struct PolicyCoverageTests {
    static let tools = [
        PolicyCoverage.UpstreamTool(
            name: "imageBackgroundRemoval", inputSchema: ["type": "object", "properties": ["image": ["type": "string"]]]),
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

    @Test func closestNameNeedsToBeClose() {
        #expect(PolicyCoverage.closest(to: "transfr", among: ["transfer", "scale"]) == "transfer")
        #expect(PolicyCoverage.closest(to: "zzz", among: ["transfer", "scale"]) == nil)
        #expect(PolicyCoverage.editDistance(Array("kitten".unicodeScalars), Array("sitting".unicodeScalars)) == 3)
        #expect(PolicyCoverage.editDistance([], Array("ab".unicodeScalars)) == 2)
    }
}
