import Testing
@testable import ToolgateCore

@Suite struct SSEParserTests {
    @Test func parsesEventsSplitAnywhereAcrossChunks() throws {
        let stream = Array("event: message\nid: 7\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\r\ndata: line2\r\n\r\nid: 9\rdata: x\r\r\n".utf8)
        for split in 0...stream.count {
            var parser = SSEParser()
            var events = try parser.feed(stream[..<split])
            events += try parser.feed(stream[split...])
            let withData = events.filter { !$0.data.isEmpty }
            #expect(withData.map(\.data) == ["{\"a\":1}", "line1\nline2", "x"], "split at \(split)")
            #expect(withData.map(\.id) == ["7", nil, "9"])
            #expect(withData.first?.event == "message")
            // Every byte belongs to exactly one event block: re-emitting them reproduces the stream.
            #expect(events.flatMap(\.raw) + parser.pendingBytes == stream, "split at \(split)")
        }
    }

    /// Many events in one chunk, chunks cut at a fixed stride that drifts across event boundaries: every event
    /// comes out once, in order, with its own bytes.
    @Test func manyEventsPerChunkAcrossManyChunks() throws {
        let events = (0..<300).map { "id: \($0)\ndata: {\"n\":\($0),\"pad\":\"\(String(repeating: "x", count: $0 % 37))\"}\n\n" }
        let stream = Array(events.joined().utf8)
        for stride in [1, 7, 64, 1000, 4096, stream.count] {
            var parser = SSEParser()
            var seen: [SSEEvent] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + stride, stream.count)
                seen += try parser.feed(stream[offset..<end])
                offset = end
            }
            #expect(seen.map(\.id) == (0..<300).map { "\($0)" }, "stride \(stride)")
            #expect(seen.map { String(decoding: $0.raw, as: UTF8.self) } == events, "stride \(stride)")
            #expect(parser.pendingBytes.isEmpty)
        }
    }

    /// The size cap applies to the event being assembled, not to the events already cut from the same chunk.
    @Test func theCapCountsOnlyTheUnfinishedEvent() throws {
        var parser = SSEParser(maximumEventBytes: 64)
        let small = Array("data: 0123456789\n\n".utf8)
        let chunk = Array(Array(repeating: small, count: 20).joined())
        #expect(try parser.feed(chunk).count == 20)
        #expect(try parser.feed(Array("data: ".utf8)).isEmpty)
        #expect(throws: SSEParser.TooLarge.self) { try parser.feed(Array(repeating: UInt8(ascii: "a"), count: 100)) }
    }

    @Test func keepsPartialEventsForTheNextChunk() throws {
        var parser = SSEParser()
        #expect(try parser.feed(Array("data: par".utf8)).isEmpty)
        #expect(Array(parser.pendingBytes) == Array("data: par".utf8))
        let events = try parser.feed(Array("tial\n\n".utf8))
        #expect(events.map(\.data) == ["partial"])
    }

    @Test func unchangedEventsReEncodeToTheirOwnBytes() throws {
        var parser = SSEParser()
        let raw = Array("event: message\nid: 3\ndata: {}\n\n".utf8)
        let event = try #require(try parser.feed(raw).first)
        #expect(event.encoded() == raw)
        var changed = event
        changed.raw = []
        changed.data = "{\"b\":2}"
        #expect(String(decoding: changed.encoded(), as: UTF8.self) == "event: message\nid: 3\ndata: {\"b\":2}\n\n")
    }

    @Test func refusesToBufferAnEndlessEvent() {
        var parser = SSEParser(maximumEventBytes: 64)
        #expect(throws: SSEParser.TooLarge.self) { try parser.feed(Array(repeating: UInt8(ascii: "a"), count: 100)) }
    }

    @Test func messageEventsCarryOneJSONValue() {
        let event = SSEEvent.message(["jsonrpc": "2.0", "id": 1, "result": [:]])
        #expect(String(decoding: event.encoded(), as: UTF8.self) == "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n")
    }
}
