#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import ToolgateCore

/// What `toolgate stdio` keeps of its one client's MCP session: the upstream's `Mcp-Session-Id` and the protocol
/// revision `initialize` settled on, so each later message is sent with the headers an HTTP client would send.
final class StdioSession: Sendable {
    private struct State {
        var id: String?
        var protocolVersion: String?
        var streamStarted = false
    }

    private let state = Mutex(State())

    var id: String? { state.withLock { $0.id } }

    /// Adopts what `initialize` settled; true the first time a session id is adopted (time to open its stream).
    @discardableResult
    func adopt(_ id: String?, protocolVersion: String?) -> Bool {
        state.withLock { state in
            state.id = id
            if let protocolVersion { state.protocolVersion = protocolVersion }
            guard id != nil, !state.streamStarted else { return false }
            state.streamStarted = true
            return true
        }
    }

    /// The headers for one message (nil: a GET or DELETE of the session). A 2026-07-28 message names its revision
    /// in `_meta` and repeats its method and tool name in headers, as HTTP clients of that era do.
    func headers(for message: JSONValue?) -> HTTPFields {
        let (id, negotiated) = state.withLock { ($0.id, $0.protocolVersion) }
        var fields: HTTPFields = [.contentType: "application/json", .accept: "application/json, text/event-stream"]
        if let id { fields[MCPProxy.sessionID] = id }
        let meta = message?["params"]?["_meta"]?["io.modelcontextprotocol/protocolVersion"]?.stringValue
        if let version = meta ?? negotiated { fields[MCPProxy.protocolVersion] = version }
        if let meta, ProtocolEra(protocolVersionHeader: meta) == .perRequest, let method = message?["method"]?.stringValue {
            fields[MCPProxy.mcpMethod] = method
            let name: String? =
                switch method {
                case "tools/call", "prompts/get": message?["params"]?["name"]?.stringValue
                case "resources/read": message?["params"]?["uri"]?.stringValue
                default: nil
                }
            if let name { fields[MCPProxy.mcpName] = ProxyHeaders.nameHeaderValue(name) }
        }
        return fields
    }
}

/// Lines of a file descriptor, read on a thread of their own (a blocking read must not hold one of the few
/// cooperative threads). A line longer than the limit is skipped to its end and reported.
enum StdioLineReader {
    enum Line: Sendable {
        case line([UInt8])
        case tooLong(Int)
    }

    static func lines(from descriptor: Int32, maximumLineBytes: Int) -> AsyncStream<Line> {
        let (stream, continuation) = AsyncStream<Line>.makeStream(bufferingPolicy: .unbounded)
        let thread = Thread {
            var pending: [UInt8] = []
            var skipping = 0
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                var start = 0
                for i in 0..<count where buffer[i] == 0x0A {
                    if skipping > 0 {
                        continuation.yield(.tooLong(skipping + i - start))
                        skipping = 0
                    } else {
                        pending += buffer[start..<i]
                        if pending.last == 0x0D { pending.removeLast() }
                        continuation.yield(.line(pending))
                    }
                    pending = []
                    start = i + 1
                }
                if skipping > 0 {
                    skipping += count - start
                } else {
                    pending += buffer[start..<count]
                    if pending.count > maximumLineBytes {
                        skipping = pending.count
                        pending = []
                    }
                }
            }
            if !pending.isEmpty { continuation.yield(.line(pending)) }
            continuation.finish()
        }
        thread.name = "toolgate-stdin"
        thread.start()
        return stream
    }
}

/// Whole lines to a file descriptor, one writer at a time so lines never interleave.
public final class StdioLineWriter: Sendable {
    private let descriptor: Int32
    private let lock = Mutex(())

    public init(descriptor: Int32) { self.descriptor = descriptor }

    /// Writes `message` and a newline; a message holding raw newlines would break the framing, so the caller gives
    /// compact JSON.
    func write(_ message: [UInt8]) {
        let line = message + [0x0A]
        lock.withLock { _ in
            var offset = 0
            while offset < line.count {
                let written = line.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { return }  // the client closed stdout: nothing more can reach it
                offset += written
            }
        }
    }
}

/// Where one response's messages go: straight to stdout, or held (the answer to `initialize`) until released.
final class StdioMessageSink: @unchecked Sendable {
    // @unchecked: one response body writes into a sink, from one task at a time; `release` follows its end.
    let output: StdioLineWriter
    private let hold: Bool
    private(set) var held: [JSONValue] = []
    private var json: [UInt8] = []
    private var sawJSON = false
    private var parser = SSEParser()

    init(output: StdioLineWriter, hold: Bool) {
        self.output = output
        self.hold = hold
    }

    func emit(_ message: JSONValue) {
        if hold { held.append(message) } else { output.write(JSONWriter.bytes(message)) }
    }

    func event(bytes: [UInt8]) throws {
        for event in try parser.feed(bytes) where !event.data.isEmpty {
            if let message = try? JSONParser.parse(Array(event.data.utf8)) { emit(message) }
        }
    }

    func json(bytes: [UInt8]) {
        sawJSON = true
        json += bytes
    }

    /// Emits a JSON body read whole; false when there was one and it was not JSON.
    func finishJSON() -> Bool {
        guard sawJSON, !json.isEmpty else { return true }
        defer { json = [] }
        guard let message = try? JSONParser.parse(json) else { return false }
        emit(message)
        return true
    }

    func release() {
        for message in held { output.write(JSONWriter.bytes(message)) }
        held = []
    }
}

/// Hummingbird's response body writer, feeding a sink instead of a socket.
struct StdioBodyWriter: ResponseBodyWriter {
    let sink: StdioMessageSink
    let eventStream: Bool

    mutating func write(_ buffer: ByteBuffer) async throws {
        let bytes = Array(buffer.readableBytesView)
        if eventStream { try sink.event(bytes: bytes) } else { sink.json(bytes: bytes) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// A response body writer that keeps nothing: for an answer the client has no use for, read so that it ends.
struct StdioDiscardingBodyWriter: ResponseBodyWriter {
    mutating func write(_ buffer: ByteBuffer) async throws {}

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
