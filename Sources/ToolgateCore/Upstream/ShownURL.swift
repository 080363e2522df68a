/// An upstream URL as toolgate shows it (logs, `/readyz`, errors, metrics): without userinfo, query or fragment,
/// where hosted MCP servers often carry a key (DESIGN.md section 3).
public enum ShownURL {
    public static func redacting(_ url: String) -> String {
        let bytes = Array(url.utf8)
        guard let schemeEnd = find(Array("://".utf8), in: bytes) else { return url }
        let authorityStart = schemeEnd + 3
        var authorityEnd = authorityStart
        while authorityEnd < bytes.count, !"/?#".utf8.contains(bytes[authorityEnd]) { authorityEnd += 1 }
        var hostStart = authorityStart
        if let at = bytes[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) { hostStart = at + 1 }
        var pathEnd = authorityEnd
        while pathEnd < bytes.count, bytes[pathEnd] != UInt8(ascii: "?"), bytes[pathEnd] != UInt8(ascii: "#") { pathEnd += 1 }
        return String(decoding: bytes[0..<authorityStart] + bytes[hostStart..<pathEnd], as: UTF8.self)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
