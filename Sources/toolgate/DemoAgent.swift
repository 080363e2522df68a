import Foundation
import ToolgateCore
import ToolgateUpstream

/// The scripted agent of `toolgate demo`: plain JSON-RPC over HTTP, printed as it goes.
struct DemoAgent {
    let base: String
    let http = CurlUpstreamTransport(configuration: .init())
    var session: String?

    init(base: String) { self.base = base }

    mutating func walkThrough() async throws {
        let before = try await metricLines()
        let initialize = try await call("initialize", ["protocolVersion": "2025-06-18", "capabilities": [:], "clientInfo": ["name": "demo-agent", "version": "1"]])
        print("1. initialize → \(initialize["result"]?["serverInfo"]?["name"]?.stringValue ?? "?"), session \(session ?? "none")")
        _ = try await post(["jsonrpc": "2.0", "method": "notifications/initialized"])

        let list = try await call("tools/list", [:])
        let names = (list["result"]?["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        print("2. tools/list → \(names.joined(separator: ", "))")
        print("   (the upstream also has delete_repository: the policy hides it, so the agent never sees it)\n")

        print("3. tools/call imageBackgroundRemoval → \(summary(try await tool("imageBackgroundRemoval", ["image": "cat.png", "width": 1024])))")
        print("4. tools/call imageBackgroundRemoval width 8000 → \(summary(try await tool("imageBackgroundRemoval", ["image": "huge.png", "width": 8000])))")
        print("5. tools/call shell_exec → \(summary(try await tool("shell_exec", ["command": "rm -rf /"])))")
        print("6. tools/call delete_repository → \(summary(try await tool("delete_repository", ["name": "prod"])))\n")

        print("7. imageBackgroundRemoval, 10 per minute per grant (1 used above):")
        for i in 2...11 {
            let answer = try await tool("imageBackgroundRemoval", ["image": .string("batch-\(i).png"), "width": 512])
            print("   call \(i): \(summary(answer))")
        }

        let after = try await metricLines()
        print("\n8. /metrics lines that changed:")
        for line in after.sorted() where !before.contains(line) && line.hasPrefix("toolgate_tool_calls_total") {
            print("   \(line)")
        }
    }

    private func summary(_ response: JSONValue) -> String {
        if let error = response["error"] {
            return "JSON-RPC error \(error["code"].map(JSONWriter.string) ?? "?"): \(error["message"]?.stringValue ?? "")"
        }
        let result = response["result"] ?? .null
        let text = result["content"]?.arrayValue?.first?["text"]?.stringValue ?? ""
        if let denial = result["_meta"]?["toolgate/denial"] {
            var parts = ["denied (\(denial["reason"]?.stringValue ?? "?"))"]
            if let retry = denial["retryAfterSeconds"] { parts.append("retryAfterSeconds \(JSONWriter.string(retry))") }
            return parts.joined(separator: ", ") + ": \(text)"
        }
        return "ok: \(text)"
    }

    private mutating func tool(_ name: String, _ arguments: JSONValue) async throws -> JSONValue {
        try await call("tools/call", ["name": .string(name), "arguments": arguments])
    }

    private var nextID = 0

    private mutating func call(_ method: String, _ params: JSONValue) async throws -> JSONValue {
        nextID += 1
        return try await post(["jsonrpc": "2.0", "id": .number(JSONNumber(nextID)), "method": .string(method), "params": params])
    }

    private mutating func post(_ message: JSONValue) async throws -> JSONValue {
        var headers = [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Accept", "application/json, text/event-stream")]
        if let session { headers.append(HTTPHeader("Mcp-Session-Id", session)) }
        let response = try await http.send(UpstreamRequest(method: .post, url: base + "/mcp", headers: headers, body: JSONWriter.bytes(message)))
        if let id = response.header("Mcp-Session-Id") { session = id }
        var bytes: [UInt8] = []
        while let chunk = try await response.body.next() { bytes += chunk }
        return bytes.isEmpty ? .null : try JSONParser.parse(bytes)
    }

    private func metricLines() async throws -> Set<String> {
        let response = try await http.send(UpstreamRequest(method: .get, url: base + "/metrics", headers: []))
        var bytes: [UInt8] = []
        while let chunk = try await response.body.next() { bytes += chunk }
        return Set(String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init))
    }
}
