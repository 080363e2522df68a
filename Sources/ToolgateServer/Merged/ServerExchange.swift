import HTTPTypes
import Hummingbird
import NIOCore
import ToolgateCore

/// A request the merged endpoint sends to one server: through that server's own proxy, so it is authenticated,
/// enforced, relayed, audited and counted exactly as on `/mcp/NAME`.
struct ServerExchange: Sendable {
    let server: String
    let proxy: MCPProxy

    /// `head` is the agent's, with this server's session and revision; `mergedSession` is what `session` scope
    /// counts at the merged endpoint.
    func send(
        head: HTTPRequest, body: [UInt8], agent: (any AgentPresence)?, mergedSession: String?
    ) async -> Response {
        var head = head
        head.headerFields[.contentLength] = nil
        let request = Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: body)))
        return await proxy.handle(request, agent: agent, mergedSession: mergedSession)
    }

    /// The JSON-RPC messages of an answer read whole: a JSON body, or every event of an event stream. Bounded, since
    /// only lists and handshakes are read this way; a broken answer reads as what arrived before it broke.
    static func messages(of response: Response, limit: Int = MCPProxy.maximumBufferedBody) async -> [JSONValue] {
        let collector = BodyCollector(limit: limit)
        do {
            try await response.body.write(collector.writer)
        } catch {
            // What arrived is all there is.
        }
        let bytes = collector.bytes
        if response.headers[.contentType].map({ $0.lowercased().hasPrefix("text/event-stream") }) == true {
            var parser = SSEParser(maximumEventBytes: limit)
            let events = (try? parser.feed(bytes + [10, 10])) ?? []
            return events.compactMap { try? JSONParser.parse(Array($0.data.utf8)) }
        }
        switch try? JSONParser.parse(bytes) {
        case .array(let values)?: return values
        case let value?: return [value]
        case nil: return []
        }
    }

    /// The answer to request `id` among `messages`.
    static func answer(to id: JSONValue, in messages: [JSONValue]) -> JSONValue? {
        messages.first { $0["id"] == id && $0["method"] == nil }
    }
}

/// Gathers a response body in memory, up to a limit.
final class BodyCollector: @unchecked Sendable {
    private(set) var bytes: [UInt8] = []
    let limit: Int

    init(limit: Int) { self.limit = limit }

    struct Writer: ResponseBodyWriter {
        let collector: BodyCollector

        mutating func write(_ buffer: ByteBuffer) async throws {
            guard collector.bytes.count + buffer.readableBytes <= collector.limit else { throw TooLarge() }
            collector.bytes += buffer.readableBytesView
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    struct TooLarge: Error {}

    var writer: Writer { Writer(collector: self) }
}
