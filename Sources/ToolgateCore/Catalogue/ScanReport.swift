/// What `toolgate scan` prints (DESIGN.md section 11): per server, every tool classified, and its resources,
/// templates and prompts. The JSON form is a contract other tools read; the table and Markdown are for people.
public struct ScanReport: Sendable {
    public struct Server: Sendable {
        public let name: String
        /// Why the server could not be listed; nil when it was.
        public let error: String?
        public let tools: [(tool: ToolDefinition, annotations: JSONValue?, classification: ToolClassification)]
        public let resources: [JSONValue]
        public let prompts: [JSONValue]
    }

    public let servers: [Server]

    public init(servers: [Server]) { self.servers = servers }

    /// One server's lists as it gave them (`tools/list` entries and so on), classified.
    public static func server(
        name: String, tools: [JSONValue], resources: [JSONValue], templates: [JSONValue], prompts: [JSONValue]
    ) -> Server {
        let classified = tools.compactMap { entry -> (ToolDefinition, JSONValue?, ToolClassification)? in
            guard let tool = ToolDefinition(listed: entry) else { return nil }
            return (tool, entry["annotations"], ToolClassifier.classify(tool))
        }
        let listed = resources.map { entry in
            JSONValue.object(JSONObject(["uri", "name", "mimeType", "description"].compactMap { key in entry[key].map { .init(key: key, value: $0) } }))
        } + templates.map { entry in
            JSONValue.object(JSONObject(["uriTemplate", "name", "mimeType", "description"].compactMap { key in entry[key].map { .init(key: key, value: $0) } }))
        }
        let promptList = prompts.map { entry in
            JSONValue.object(JSONObject(["name", "description", "arguments"].compactMap { key in entry[key].map { .init(key: key, value: $0) } }))
        }
        return Server(name: name, error: nil, tools: classified, resources: listed, prompts: promptList)
    }

    public static func failed(name: String, error: String) -> Server {
        Server(name: name, error: error, tools: [], resources: [], prompts: [])
    }

    // MARK: forms

    public var json: JSONValue {
        .object(["servers": .array(servers.map { server in
            var object: JSONObject = ["name": .string(server.name)]
            if let error = server.error { object["error"] = .string(error) }
            object["tools"] = .array(server.tools.map { item in
                var tool: JSONObject = [
                    "name": .string(item.tool.name), "category": .string(item.classification.category.rawValue),
                    "risk": .string(item.classification.risk.rawValue),
                    "confidence": .string(item.classification.confidence.rawValue),
                    "evidence": .array(Self.evidence(item.classification).map(JSONValue.string)),
                ]
                tool["annotations"] = item.annotations ?? .null
                return .object(tool)
            })
            object["resources"] = .array(server.resources)
            object["prompts"] = .array(server.prompts)
            return .object(object)
        })])
    }

    /// The signals behind the category, then conflicts and notes, each one line.
    static func evidence(_ classification: ToolClassification) -> [String] {
        classification.evidence.map { "\($0.seen) (\($0.category.rawValue))" }
            + classification.conflicts.map { "conflict: " + $0 } + classification.notes.map { "note: " + $0 }
    }

    public var table: String {
        var out = ""
        for server in servers {
            out += "\(server.name)" + (server.error.map { ": could not be listed: \($0)\n\n" } ?? "\n")
            guard server.error == nil else { continue }
            let rows = server.tools.map { item in
                [item.tool.name, item.classification.category.rawValue, item.classification.risk.rawValue,
                 item.classification.confidence.rawValue, Self.evidence(item.classification).first ?? ""]
            }
            out += Self.aligned([["TOOL", "CATEGORY", "RISK", "CONFIDENCE", "EVIDENCE"]] + rows)
            out += "\(server.tools.count) tool\(server.tools.count == 1 ? "" : "s"), \(server.resources.count) resource\(server.resources.count == 1 ? "" : "s") and templates, \(server.prompts.count) prompt\(server.prompts.count == 1 ? "" : "s")\n\n"
        }
        return out
    }

    public var markdown: String {
        var out = "# Tools agents can call\n\n"
        for server in servers {
            out += "## \(server.name)\n\n"
            if let error = server.error {
                out += "Could not be listed: \(error)\n\n"
                continue
            }
            out += "| tool | category | risk | confidence | evidence |\n|---|---|---|---|---|\n"
            for item in server.tools {
                let evidence = Self.evidence(item.classification).joined(separator: "; ").replacingPipes
                out += "| `\(item.tool.name)` | \(item.classification.category.rawValue) | \(item.classification.risk.rawValue) | \(item.classification.confidence.rawValue) | \(evidence) |\n"
            }
            if !server.resources.isEmpty {
                out += "\nResources: " + server.resources.compactMap { ($0["uri"] ?? $0["uriTemplate"])?.stringValue }.map { "`\($0)`" }.joined(separator: ", ") + "\n"
            }
            if !server.prompts.isEmpty {
                out += "\nPrompts: " + server.prompts.compactMap { $0["name"]?.stringValue }.map { "`\($0)`" }.joined(separator: ", ") + "\n"
            }
            out += "\n"
        }
        return out
    }

    static func aligned(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { min(60, $0[column].count) }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).enumerated().map { index, cell in
                let text = cell.0.count > 60 ? String(cell.0.prefix(59)) + "…" : cell.0
                return index == row.count - 1 ? text : text + String(repeating: " ", count: cell.1 - text.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate var replacingPipes: String { split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|") }
}
