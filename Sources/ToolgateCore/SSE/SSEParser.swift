#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Incremental parser for `text/event-stream` (the WHATWG event-stream format), fed chunk by chunk as the
/// upstream sends them. Lines may end in CRLF, LF or CR, and a chunk may split a line anywhere.
public struct SSEParser: Sendable {
    /// One event may not grow past this; a stream that tries is cut rather than buffered without bound.
    public let maximumEventBytes: Int

    private var buffer: [UInt8] = []
    /// Start of the event being assembled, of the line being scanned, and how far the scan got, within `buffer`.
    /// Events are cut from the front by moving `eventStart`; the consumed bytes are dropped once per chunk, not
    /// once per event, so a chunk holding many small events costs one move of its tail instead of one per event.
    private var eventStart = 0
    private var scanned = 0
    private var lineStart = 0
    private var current = SSEEvent(data: "")
    private var dataLines: [String] = []

    public struct TooLarge: Error, Sendable {}

    public init(maximumEventBytes: Int = 8 << 20) { self.maximumEventBytes = maximumEventBytes }

    /// Complete events in `chunk`, in order. Partial input is kept for the next call.
    public mutating func feed(_ chunk: some Collection<UInt8>) throws(TooLarge) -> [SSEEvent] {
        if eventStart > 0 {
            buffer.removeFirst(eventStart)
            scanned -= eventStart
            lineStart -= eventStart
            eventStart = 0
        }
        buffer.append(contentsOf: chunk)
        var events: [SSEEvent] = []
        while let lineEnd = nextLineBreak() {
            let byte = buffer[lineEnd]
            // A CR at the end of the input may be the first half of a CRLF: wait for the next byte.
            if byte == 0x0D, lineEnd + 1 == buffer.count {
                scanned = lineEnd
                break
            }
            scanned = lineEnd + ((byte == 0x0D && buffer[lineEnd + 1] == 0x0A) ? 2 : 1)
            if lineEnd == lineStart {
                if let event = dispatch(upTo: scanned) { events.append(event) }
            } else {
                process(line: buffer[lineStart..<lineEnd])
            }
            lineStart = scanned
        }
        guard buffer.count - eventStart <= maximumEventBytes else { throw TooLarge() }
        return events
    }

    /// The next CR or LF at or after `scanned`; with none, `scanned` moves to the end. memchr finds the LF (the
    /// usual line end) a vector at a time; the CR search then covers only the bytes before it.
    private mutating func nextLineBreak() -> Int? {
        let from = scanned
        let found: Int? = buffer.withUnsafeBufferPointer { bytes -> Int? in
            guard let base = bytes.baseAddress, from < bytes.count else { return nil }
            let lineFeed = memchr(base + from, 0x0A, bytes.count - from).map { UnsafeRawPointer($0) - UnsafeRawPointer(base) }
            let limit = lineFeed ?? bytes.count
            let carriageReturn = memchr(base + from, 0x0D, limit - from).map { UnsafeRawPointer($0) - UnsafeRawPointer(base) }
            return carriageReturn ?? lineFeed
        }
        if found == nil { scanned = buffer.count }
        return found
    }

    /// Bytes received that do not yet form a complete event (forwarded as-is when a stream ends).
    public var pendingBytes: ArraySlice<UInt8> { buffer[eventStart...] }

    private mutating func process(line: ArraySlice<UInt8>) {
        if line.first == UInt8(ascii: ":") { return }  // comment
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let name = String(decoding: line[line.startIndex..<(colon ?? line.endIndex)], as: UTF8.self)
        var valueStart = colon.map { $0 + 1 } ?? line.endIndex
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = String(decoding: line[valueStart..<line.endIndex], as: UTF8.self)
        // Field names compare by their bytes: an upstream's line is as long as an event may be, and canonical
        // equivalence would cost time quadratic in a run of combining marks.
        if name.isExactly("data") {
            dataLines.append(value)
        } else if name.isExactly("event") {
            current.event = value
        } else if name.isExactly("id") {
            if !value.utf8.contains(0) { current.id = value }
        } else if name.isExactly("retry") {
            if let n = Int(value), n >= 0 { current.retry = n }
        }
    }

    /// Ends the event at a blank line. Blocks with no data (only comments or an id) produce no event
    /// for the caller, but their bytes still belong to the stream, so they are returned with empty data.
    private mutating func dispatch(upTo end: Int) -> SSEEvent? {
        var event = current
        // One data line (the usual case) is used as is, not copied by a join.
        event.data = dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n")
        event.raw = Array(buffer[eventStart..<end])
        eventStart = end
        current = SSEEvent(data: "")
        dataLines = []
        return event
    }
}
