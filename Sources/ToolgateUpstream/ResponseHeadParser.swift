import ToolgateCore

/// Rebuilds the final response head from curl's header callback, which hands over one raw line at a time.
///
/// curl reports interim 1xx blocks (100 Continue, 103 Early Hints) through the same callback, so every
/// status line starts over; only a block with a final status completes the head. Names keep the upstream's
/// spelling and headers keep its order, which the proxy needs to pass them on faithfully.
struct ResponseHeadParser {
    private(set) var status: Int?
    private(set) var headers: [HTTPHeader] = []
    private(set) var isComplete = false

    /// Returns true when this line completed the final head. Lines after that (trailers) are ignored.
    mutating func feed<Bytes: Collection<UInt8>>(line raw: Bytes) -> Bool {
        guard !isComplete else { return false }
        var line = Array(raw)
        while let last = line.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { line.removeLast() }

        if line.isEmpty {
            guard let status, status >= 200 else { return false }
            isComplete = true
            return true
        }
        if line.starts(with: Self.httpPrefix) {
            status = Self.parseStatus(line)
            headers = []
            return false
        }
        if line[0] == UInt8(ascii: " ") || line[0] == UInt8(ascii: "\t") {
            // Obsolete line folding continues the previous header's value.
            if !headers.isEmpty {
                let more = Self.trimmed(line[...])
                if !more.isEmpty { headers[headers.count - 1].value += " " + String(decoding: more, as: UTF8.self) }
            }
            return false
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return false }
        let name = String(decoding: line[..<colon], as: UTF8.self)
        let value = String(decoding: Self.trimmed(line[(colon + 1)...]), as: UTF8.self)
        headers.append(HTTPHeader(name, value))
        return false
    }

    private static let httpPrefix = Array("HTTP/".utf8)

    /// `HTTP/1.1 200 OK` → 200; nil when the line has no three-digit code.
    private static func parseStatus(_ line: [UInt8]) -> Int? {
        guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let digits = line[(space + 1)...].prefix(3)
        guard digits.count == 3, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else {
            return []
        }
        return bytes[first...last]
    }
}
