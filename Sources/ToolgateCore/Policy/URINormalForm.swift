/// The spellings under which a server may understand a URI an agent sends, so the `resources` section judges all of
/// them: a server that lowercases the scheme, decodes `%6B`, or resolves `..` (pydantic's `AnyUrl` does) reads
/// `SECRET://k%65ys` or `file:///srv/docs/../secret/key` as another URI than its bytes say.
/// - `normalized`: RFC 3986 section 6.2.2 syntax-based normalization: scheme and authority lowercased,
///   percent-encoded unreserved characters decoded, other percent-encodings in uppercase hex, dot segments removed.
/// - `decoded`: the same with every percent-encoding decoded (before dot segments are removed), as a server that
///   decodes the whole URI before it matches would read it.
/// Both cost time linear in the URI.
public enum URINormalForm {
    public static func normalized(_ uri: String) -> String { form(uri, decodeAll: false) }
    public static func decoded(_ uri: String) -> String { form(uri, decodeAll: true) }

    /// The URI as sent, then its other spellings, each once.
    public static func spellings(of uri: String) -> [String] {
        var out = [uri]
        for form in [normalized(uri), decoded(uri)] where !out.contains(where: { $0.isExactly(form) }) { out.append(form) }
        return out
    }

    private static func form(_ uri: String, decodeAll: Bool) -> String {
        let bytes = Array(uri.utf8)
        WorkMeter.charge(bytes.count)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        // scheme ":" — lowercased.
        if let colon = schemeEnd(bytes) {
            out += bytes[...colon].map(lowercased)
            i = colon + 1
        }
        // "//" authority — lowercased.
        if i + 1 < bytes.count, bytes[i] == slash, bytes[i + 1] == slash {
            var end = i + 2
            while end < bytes.count, ![slash, question, hash].contains(bytes[end]) { end += 1 }
            out += percentForm(bytes[i..<end], decodeAll: decodeAll, lowercase: true)
            i = end
        }
        var pathEnd = i
        while pathEnd < bytes.count, bytes[pathEnd] != question, bytes[pathEnd] != hash { pathEnd += 1 }
        out += removingDotSegments(percentForm(bytes[i..<pathEnd], decodeAll: decodeAll))
        out += percentForm(bytes[pathEnd...], decodeAll: decodeAll)
        return String(decoding: out, as: UTF8.self)
    }

    private static let slash = UInt8(ascii: "/"), question = UInt8(ascii: "?"), hash = UInt8(ascii: "#")
    private static let dot = UInt8(ascii: ".")

    private static func lowercased(_ b: UInt8) -> UInt8 { (0x41...0x5A).contains(b) ? b + 0x20 : b }

    /// The index of the `:` ending a scheme (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), if the URI has one.
    private static func schemeEnd(_ bytes: [UInt8]) -> Int? {
        guard let first = bytes.first, (0x61...0x7A).contains(lowercased(first)) else { return nil }
        var i = 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: ":") { return i }
            let ok = (0x61...0x7A).contains(lowercased(b)) || (0x30...0x39).contains(b) || b == UInt8(ascii: "+")
                || b == UInt8(ascii: "-") || b == dot
            guard ok else { return nil }
            i += 1
        }
        return nil
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    private static func isUnreserved(_ b: UInt8) -> Bool {
        (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) || b == UInt8(ascii: "-")
            || b == dot || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    /// `lowercase`: letters lowercased, except percent-encodings' hex digits (always uppercase).
    private static func percentForm(_ bytes: ArraySlice<UInt8>, decodeAll: Bool, lowercase: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "%"), bytes.endIndex - i >= 3,
                let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2])
            {
                let value = high << 4 | low
                if decodeAll || isUnreserved(value) {
                    out.append(lowercase ? lowercased(value) : value)
                } else {
                    let digits = Array("0123456789ABCDEF".utf8)
                    out += [UInt8(ascii: "%"), digits[Int(high)], digits[Int(low)]]
                }
                i += 3
            } else {
                out.append(lowercase ? lowercased(bytes[i]) : bytes[i])
                i += 1
            }
        }
        return out
    }

    /// RFC 3986 section 5.2.4, over the path's segments.
    private static func removingDotSegments(_ path: [UInt8]) -> [UInt8] {
        let segments = path.split(separator: slash, omittingEmptySubsequences: false)
        guard segments.contains(where: { $0.elementsEqual([dot]) || $0.elementsEqual([dot, dot]) }) else { return path }
        let absolute = path.first == slash
        var kept: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            if segment.elementsEqual([dot]) {
                trailingSlash = isLast
            } else if segment.elementsEqual([dot, dot]) {
                if kept.count > (absolute ? 1 : 0) { kept.removeLast() }
                trailingSlash = isLast
            } else {
                kept.append(segment)
                trailingSlash = false
            }
        }
        var out = Array(kept.joined(separator: [slash]))
        if absolute, out.first != slash { out.insert(slash, at: 0) }
        if trailingSlash, out.last != slash { out.append(slash) }
        return out
    }
}
