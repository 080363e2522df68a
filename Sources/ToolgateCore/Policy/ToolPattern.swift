/// A tool name or glob from the policy. Only `*` is a wildcard.
public struct ToolPattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    private let segments: [[UInt8]]

    public init(_ text: String) {
        self.text = text
        self.segments = text.utf8.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false).map(Array.init)
    }

    public var isGlob: Bool { segments.count > 1 }
    public var description: String { text }

    /// Literal (non-`*`) characters: the more a glob has, the more specific it is.
    public var literalCount: Int { segments.reduce(0) { $0 + $1.count } }

    /// Length of the literal text before the first `*`: the tie-breaker between equally specific globs.
    public var literalPrefixCount: Int { segments[0].count }

    public func matches(_ name: String) -> Bool {
        if !isGlob { return name.isExactly(text) }
        var name = name
        return name.withUTF8 { matches(bytes: $0) }
    }

    private func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let first = segments[0]
        let last = segments[segments.count - 1]
        guard bytes.count >= first.count + last.count else { return false }
        WorkMeter.charge(first.count + last.count + 1)
        guard bytes.starts(with: first) else { return false }
        guard bytes[(bytes.count - last.count)...].elementsEqual(last) else { return false }
        // Middle segments in order, leftmost match first, within the part between prefix and suffix.
        var position = first.count
        let end = bytes.count - last.count
        for segment in segments.dropFirst().dropLast() where !segment.isEmpty {
            guard let found = Self.find(segment, in: bytes, from: position, to: end) else { return false }
            position = found + segment.count
        }
        return true
    }

    private static func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        guard to - from >= needle.count else { return nil }
        var i = from
        while i + needle.count <= to {
            WorkMeter.charge(1)
            if haystack[i] == needle[0] {
                WorkMeter.charge(needle.count)
                if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            }
            i += 1
        }
        return nil
    }

    /// Precedence among globs: more literal characters, then a longer literal prefix, then byte order.
    static func precedes(_ a: ToolPattern, _ b: ToolPattern) -> Bool {
        if a.literalCount != b.literalCount { return a.literalCount > b.literalCount }
        if a.literalPrefixCount != b.literalPrefixCount { return a.literalPrefixCount > b.literalPrefixCount }
        return a.text.utf8.lexicographicallyPrecedes(b.text.utf8)
    }
}
