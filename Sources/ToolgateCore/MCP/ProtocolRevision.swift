/// Which of the two transport eras a request belongs to. Only the per-request era (2026-07-28 on) changes
/// what toolgate must do: check `Mcp-*` headers, and mark `CallToolResult`s with `resultType`.
public enum ProtocolEra: Sendable, Equatable {
    /// Revisions 2024-11-05 through 2025-11-25: `initialize`, `Mcp-Session-Id`.
    case handshake
    /// Revision 2026-07-28 and later: `server/discover`, self-contained requests.
    case perRequest

    public static let firstPerRequestRevision = "2026-07-28"

    /// From the `MCP-Protocol-Version` header. Revisions are dates, so they compare as strings.
    public init(protocolVersionHeader: String?) {
        guard let version = protocolVersionHeader?.trimmingWhitespace, version.utf8.count == 10 else {
            self = .handshake
            return
        }
        // Byte order: the header comes from outside, and dates in ASCII sort as bytes.
        self = Self.firstPerRequestRevision.utf8.lexicographicallyPrecedes(version.utf8) || version.isExactly(Self.firstPerRequestRevision)
            ? .perRequest : .handshake
    }
}
