import HTTPTypes
import HummingbirdCore
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// A small MCP server (Streamable HTTP, JSON responses, handshake era) for `toolgate demo`.
/// Its tools only describe what they would do: nothing is executed or deleted.
public enum ExampleMCPServer {
    public static let tools: [JSONValue] = [
        tool("imageBackgroundRemoval", "Removes the background from an image.", ["image": "string", "width": "integer"], required: ["image"]),
        tool("echo", "Echoes its text.", ["text": "string"], required: ["text"]),
        tool("shell_exec", "Runs a shell command (the example server only describes it).", ["command": "string"], required: ["command"]),
        tool("delete_repository", "Deletes a repository (the example server only describes it).", ["name": "string"], required: ["name"]),
    ]

    public static func makeApplication(
        host: String = "127.0.0.1", port: Int = 0, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) -> some ApplicationProtocol {
        let router = Router()
        router.post("/mcp") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return respond(to: Array(body.readableBytesView), protocolVersion: request.headers[HTTPField.Name("MCP-Protocol-Version")!])
        }
        router.get("/mcp") { _, _ in Response(status: .methodNotAllowed) }
        router.post("/bench/sse") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return benchmarkStream(to: Array(body.readableBytesView), query: request.uri.queryParameters)
        }
        router.delete("/mcp") { _, _ in Response(status: .ok) }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    static func respond(to bytes: [UInt8], protocolVersion: String?) -> Response {
        let message: JSONRPCMessage
        do {
            guard case .single(let single) = try JSONRPCBody.parse(bytes) else {
                return json(JSONRPCResponse.error(id: nil, code: .invalidRequest, message: "batches are not supported"), status: .badRequest)
            }
            message = single
        } catch {
            return json(JSONRPCResponse.error(id: nil, code: error.code, message: error.message), status: .badRequest)
        }
        guard case .request(let method) = message.kind, let id = message.id else {
            return Response(status: .accepted)
        }
        switch method {
        case "initialize":
            let requested = message.params?["protocolVersion"]?.stringValue ?? "2025-06-18"
            var response = json(
                JSONRPCResponse.result(
                    id: id,
                    [
                        "protocolVersion": .string(requested),
                        "capabilities": ["tools": [:]],
                        "serverInfo": ["name": "toolgate-example-upstream", "version": "1.0.0"],
                    ]))
            response.headers[HTTPField.Name("Mcp-Session-Id")!] = ToolgateCore.CounterKey.subjectHash("\(UInt64.random(in: 0...UInt64.max))")
            return response
        case "ping":
            return json(JSONRPCResponse.result(id: id, [:]))
        case "tools/list":
            return json(JSONRPCResponse.result(id: id, ["tools": .array(tools)]))
        case "tools/call":
            let name = message.params?["name"]?.stringValue ?? ""
            let arguments = message.params?["arguments"] ?? [:]
            guard let text = run(name, arguments) else {
                return json(JSONRPCResponse.error(id: id, code: .invalidParams, message: "Unknown tool: \(name)"))
            }
            var result: JSONObject = ["content": [["type": "text", "text": .string(text)]], "isError": false]
            if ProtocolEra(protocolVersionHeader: protocolVersion) == .perRequest { result["resultType"] = "complete" }
            return json(JSONRPCResponse.result(id: id, .object(result)))
        default:
            return json(JSONRPCResponse.error(id: id, code: .methodNotFound, message: "method not found: \(method)"))
        }
    }

    /// `POST /bench/sse?bytes=N&event=E&holdMs=H` (for benchmarks/streaming.sh and memory.sh, not for MCP
    /// clients): answers any request with an event stream of `notifications/message` events of E bytes each
    /// (default 4096) until N bytes (default 50 MiB) have been sent, waits H milliseconds after the first event
    /// (or the call's own `holdMs` argument, for benchmarks/soak.sh's clients that leave mid-stream), then ends
    /// with the request's result. One event buffer is built and written over and over, so the server
    /// spends next to nothing per byte and the figures measure what is in front of it.
    static func benchmarkStream(to bytes: [UInt8], query: FlatDictionary<Substring, Substring>) -> Response {
        let message: JSONRPCMessage? = if case .single(let single) = try? JSONRPCBody.parse(bytes) { single } else { nil }
        let id = message?.id
        let total = query["bytes"].flatMap { Int($0) } ?? 50 << 20
        let eventBytes = max(query["event"].flatMap { Int($0) } ?? 4096, 128)
        let argumentHold = message?.params?["arguments"]?["holdMs"]?.numberValue?.int64Value.map { Int(clamping: $0) }
        let hold = argumentHold ?? query["holdMs"].flatMap { Int($0) } ?? 0
        let prefix = Array(#"data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":""#.utf8)
        let suffix = Array("\"}}\n\n".utf8)
        let event = ByteBuffer(bytes: prefix + Array(repeating: UInt8(ascii: "x"), count: eventBytes - prefix.count - suffix.count) + suffix)
        let batch = ByteBuffer(bytes: Array(repeating: Array(event.readableBytesView), count: 16).joined())
        let count = max(total / eventBytes, 1)
        let result = JSONRPCResponse.result(
            id: id ?? 0, ["content": [["type": "text", "text": .string("streamed \(count) events")]], "isError": false])
        let last = ByteBuffer(bytes: Array("data: ".utf8) + JSONWriter.bytes(result) + Array("\n\n".utf8))
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                try await writer.write(event)
                if hold > 0 { try await Task.sleep(for: .milliseconds(hold)) }
                var sent = 1
                while sent + 16 <= count {
                    try await writer.write(batch)
                    sent += 16
                }
                while sent < count {
                    try await writer.write(event)
                    sent += 1
                }
                try await writer.write(last)
                try await writer.finish(nil)
            })
    }

    private static func run(_ name: String, _ arguments: JSONValue) -> String? {
        func arg(_ key: String) -> String { arguments[key].map { $0.stringValue ?? JSONWriter.string($0) } ?? "" }
        switch name {
        case "imageBackgroundRemoval": return "background removed from \(arg("image"))"
        case "echo": return arg("text")
        case "shell_exec": return "(example server) would run: \(arg("command"))"
        case "delete_repository": return "(example server) would delete repository \(arg("name"))"
        default: return nil
        }
    }

    private static func tool(_ name: String, _ description: String, _ properties: [String: String], required: [String]) -> JSONValue {
        let props = JSONObject(properties.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: ["type": .string($0.value)]) })
        return [
            "name": .string(name), "description": .string(description),
            "inputSchema": ["type": "object", "properties": .object(props), "required": .array(required.map { .string($0) })],
        ]
    }

    private static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }
}
