import AsyncAlgorithms
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// Event streams at the merged endpoint: a server's requests to the agent (elicitation, sampling, roots) get ids of
/// toolgate's, so two servers' ids never meet and the agent's answer finds its server; several servers' GET streams
/// become one. Reading is paced by the agent: a server's next chunk is read only when the last one was written.
enum MergedStream {
    /// One server's answer to a routed request, as it streams.
    static func relaying(
        _ response: Response, from server: String, session: MergedSession, whenDone: @escaping @Sendable () -> Void
    ) -> Response {
        var relayed = response
        relayed.body = ResponseBody { writer in
            defer { whenDone() }
            try await pump([(server, response)], session: session, keepEventIDs: true, to: &writer)
        }
        return relayed
    }

    /// Several servers' GET streams as one. Event ids are dropped: each server numbers its own, so a
    /// `Last-Event-ID` could not say which server to resume.
    static func fanIn(_ streams: [(String, Response)], session: MergedSession, logger: Logger) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                try await pump(streams, session: session, keepEventIDs: false, to: &writer)
            })
    }

    /// Several servers' `subscriptions/listen` streams as one (revision 2026-07-28): one acknowledgment, their
    /// events, one final result (`MergedListen`).
    static func listen(_ streams: [(String, Response)], id: JSONValue) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var merge: MergedListen? = MergedListen(id: id, servers: streams.map(\.0))
                try await pump(streams, session: nil, keepEventIDs: false, listen: &merge, to: &writer)
            })
    }

    private struct Chunk: Sendable {
        let server: String
        /// Nil: that server's stream ended.
        let bytes: ByteBuffer?
    }

    private struct ChannelWriter: ResponseBodyWriter {
        let server: String
        let channel: AsyncChannel<Chunk>

        mutating func write(_ buffer: ByteBuffer) async throws {
            await channel.send(Chunk(server: server, bytes: buffer))
            // The agent left (the pump stopped): the server's own relay then stops its upstream transfer.
            try Task.checkCancellation()
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    private static func pump(
        _ streams: [(String, Response)], session: MergedSession?, keepEventIDs: Bool, to writer: inout any ResponseBodyWriter
    ) async throws {
        var none: MergedListen?
        try await pump(streams, session: session, keepEventIDs: keepEventIDs, listen: &none, to: &writer)
    }

    private static func pump(
        _ streams: [(String, Response)], session: MergedSession?, keepEventIDs: Bool, listen: inout MergedListen?,
        to writer: inout any ResponseBodyWriter
    ) async throws {
        let channel = AsyncChannel<Chunk>()
        let producers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (server, response) in streams {
                    group.addTask {
                        try? await response.body.write(ChannelWriter(server: server, channel: channel))
                        await channel.send(Chunk(server: server, bytes: nil))
                    }
                }
            }
            channel.finish()
        }
        defer { producers.cancel() }
        var parsers: [String: SSEParser] = [:]
        for await chunk in channel {
            var out: [UInt8] = []
            guard let bytes = chunk.bytes else {
                for message in listen?.ended(chunk.server) ?? [] { out += SSEEvent.message(message).encoded() }
                if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                continue
            }
            var parser = parsers[chunk.server] ?? SSEParser(maximumEventBytes: MCPProxy.maximumBufferedBody)
            let events: [SSEEvent]
            do {
                events = try parser.feed(bytes.readableBytesView)
            } catch {
                continue  // an event past the bound: the server's own relay has already ended that stream
            }
            parsers[chunk.server] = parser
            for event in events {
                if listen != nil {
                    guard let message = try? JSONParser.parse(Array(event.data.utf8)) else { continue }
                    for merged in listen!.receive(message, from: chunk.server) { out += SSEEvent.message(merged).encoded() }
                } else {
                    out += mapped(event, from: chunk.server, session: session, keepID: keepEventIDs)
                }
            }
            if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
        }
        if listen != nil {
            let out = listen!.finish().flatMap { SSEEvent.message($0).encoded() }
            try await writer.write(ByteBuffer(bytes: out))
        }
        try await writer.finish(nil)
    }

    /// A server's request gets an id of toolgate's; anything else passes (without its id on a fanned-in stream).
    static func mapped(_ event: SSEEvent, from server: String, session: MergedSession?, keepID: Bool) -> [UInt8] {
        guard let session, event.data.contains("\"method\""),
            case .object(var message)? = try? JSONParser.parse(Array(event.data.utf8)),
            message["method"] != nil, let id = message["id"], id != .null
        else {
            guard !keepID, event.id != nil else { return event.encoded() }
            return SSEEvent(event: event.event, data: event.data).encoded()
        }
        message["id"] = session.agentID(forServerRequest: id, server: server)
        return SSEEvent(id: keepID ? event.id : nil, event: event.event, data: JSONWriter.string(.object(message))).encoded()
    }
}
