import Foundation
import Testing
@testable import ToolgateCore

/// The classifier (DESIGN.md section 11) on tool definitions public MCP servers publish
/// (Fixtures/catalogue/public-servers.json), and the rules that stand above its weights.
@Suite struct ToolClassifierTests {
    struct Case {
        let server: String
        let tool: ToolDefinition
        let expected: ToolCategory
    }

    static func corpus() throws -> [Case] {
        let document = try JSONParser.parse(try Fixture.bytes("catalogue/public-servers.json"))
        var cases: [Case] = []
        for server in document["servers"]?.arrayValue ?? [] {
            for entry in server["tools"]?.arrayValue ?? [] {
                var listed = entry.objectValue ?? JSONObject()
                let properties = (entry["properties"]?.arrayValue ?? []).compactMap(\.stringValue)
                listed["inputSchema"] = .object(["properties": .object(JSONObject(properties.map { .init(key: $0, value: .object([:])) }))])
                guard let tool = ToolDefinition(listed: .object(listed)),
                    let expected = entry["expected"]?.stringValue.flatMap(ToolCategory.init(rawValue:))
                else { throw JSONRPCFailure(.invalidParams, "bad corpus entry \(entry)") }
                cases.append(Case(server: server["name"]?.stringValue ?? "?", tool: tool, expected: expected))
            }
        }
        return cases
    }

    /// Precision and recall per category over the corpus, printed for BENCHMARKS.md; the floor guards regressions.
    @Test func theCorpusIsClassifiedWellEnough() throws {
        let cases = try Self.corpus()
        var misses: [String] = []
        var truePositives: [ToolCategory: Int] = [:], predicted: [ToolCategory: Int] = [:], actual: [ToolCategory: Int] = [:]
        for item in cases {
            let got = ToolClassifier.classify(item.tool).category
            predicted[got, default: 0] += 1
            actual[item.expected, default: 0] += 1
            if got == item.expected { truePositives[got, default: 0] += 1 } else {
                misses.append("\(item.server) \(item.tool.name): \(got.rawValue), expected \(item.expected.rawValue)")
            }
        }
        var table = "| category | tools | precision | recall |\n|---|---:|---:|---:|\n"
        for category in ToolCategory.allCases {
            let tp = Double(truePositives[category, default: 0])
            let precision = predicted[category, default: 0] == 0 ? 1 : tp / Double(predicted[category]!)
            let recall = actual[category, default: 0] == 0 ? 1 : tp / Double(actual[category]!)
            table += "| \(category.rawValue) | \(actual[category, default: 0]) | \(String(format: "%.2f", precision)) | \(String(format: "%.2f", recall)) |\n"
        }
        let accuracy = Double(cases.count - misses.count) / Double(cases.count)
        print("classifier over \(cases.count) public tools: accuracy \(String(format: "%.2f", accuracy))\n\(table)misses:\n" + misses.joined(separator: "\n"))
        #expect(accuracy >= 0.85, "\(misses)")
    }

    @Test func namesSplitIntoWords() {
        #expect(ToolClassifier.tokens(of: "deleteFile") == ["delete", "file"])
        #expect(ToolClassifier.tokens(of: "delete_file") == ["delete", "file"])
        #expect(ToolClassifier.tokens(of: "files.delete-all") == ["files", "delete", "all"])
        #expect(ToolClassifier.tokens(of: "getHTTPStatus") == ["get", "httpstatus"])
        #expect(ToolClassifier.tokens(of: "imageBackgroundRemoval") == ["image", "background", "removal"])
    }

    @Test func aDestructiveNameOrHintIsNeverClassifiedBelowDestructive() {
        // Even when the server calls it read-only: that is a conflict, shown with low confidence.
        let liar = ToolClassifier.classify(ToolDefinition(
            name: "delete_everything", description: "Deletes every record.", annotations: .init(readOnly: true)))
        #expect(liar.category == .destructive && liar.confidence == .low)
        #expect(liar.conflicts.contains { $0.contains("readOnlyHint") })
        let hinted = ToolClassifier.classify(ToolDefinition(
            name: "tidy", description: "Tidies the workspace.", annotations: .init(readOnly: false, destructive: true)))
        #expect(hinted.category == .destructive && hinted.risk == .high)
        let denied = ToolClassifier.classify(ToolDefinition(
            name: "drop_table", description: "Drops a table.", annotations: .init(destructive: false)))
        #expect(denied.category == .destructive && denied.conflicts.contains { $0.contains("destructiveHint is false") })
        // A financial tool stays financial: it ranks above destructive.
        let refund = ToolClassifier.classify(ToolDefinition(
            name: "refund_and_delete", description: "", properties: [("amount", .object([:])), ("currency", .object([:]))]))
        #expect(refund.category == .financial)
    }

    @Test func aMissingDescriptionLowersConfidenceAndSaysSo() {
        let described = ToolClassifier.classify(ToolDefinition(name: "get_user", description: "Gets a user by id."))
        let bare = ToolClassifier.classify(ToolDefinition(name: "get_user"))
        #expect(described.category == .read && bare.category == .read)
        #expect(bare.confidence < described.confidence)
        #expect(bare.notes.contains { $0.contains("no description") })
    }

    @Test func schemaPropertiesSpeak() {
        let shell = ToolClassifier.classify(ToolDefinition(name: "helper", description: "Does things.", properties: [("command", .object([:]))]))
        #expect(shell.category == .execute && shell.evidence.contains { $0.seen == "property \"command\"" })
        let payment = ToolClassifier.classify(ToolDefinition(
            name: "create_thing", description: "Creates a thing.", properties: [("amount", .object([:])), ("currency", .object([:]))]))
        #expect(payment.category == .financial)
        let unknown = ToolClassifier.classify(ToolDefinition(name: "zorb"))
        #expect(unknown.category == .write && unknown.confidence == .low)
    }
}
