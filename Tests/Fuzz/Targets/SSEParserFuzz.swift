import ToolgateCore

extension FuzzTarget {
    /// An upstream's event stream. The first two bytes choose where the rest is cut into three chunks: the events
    /// and the leftover bytes must not depend on how the network split the stream. A parser with a small event
    /// limit is fed too, for the cut-off path.
    static let sseParser = FuzzTarget(name: "sse", summary: "the upstream event-stream parser, split anywhere") { input in
        guard input.count >= 2 else { return }
        let stream = Array(input[2...])
        let first = min(Int(input[0]) * stream.count / 255, stream.count)
        let second = first + min(Int(input[1]) * (stream.count - first) / 255, stream.count - first)

        var whole = SSEParser()
        guard let expected = try? whole.feed(stream) else { violated("sse", "an event under the limit was refused") }

        var split = SSEParser()
        var events: [SSEEvent] = []
        for chunk in [stream[..<first], stream[first..<second], stream[second...]] {
            guard let some = try? split.feed(chunk) else { violated("sse", "an event under the limit was refused") }
            events += some
        }
        guard events == expected else {
            violated("sse", "cuts at \(first) and \(second) changed the events: \(events.count) against \(expected.count)")
        }
        guard split.pendingBytes.elementsEqual(whole.pendingBytes) else { violated("sse", "cuts changed the pending bytes") }
        for event in expected where !event.raw.isEmpty {
            guard event.encoded() == event.raw else { violated("sse", "an unchanged event is not re-emitted verbatim") }
        }

        var small = SSEParser(maximumEventBytes: 16)
        for chunk in [stream[..<first], stream[first..<second], stream[second...]] {
            guard (try? small.feed(chunk)) != nil else { break }
            guard small.pendingBytes.count <= 16 else { violated("sse", "the pending bytes outgrew the event limit") }
        }
    }
}
