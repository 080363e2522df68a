/// One page of the approvals list (DESIGN.md section 6): oldest first, at most `size` at a time, so the API's
/// answer and the page stay small however many approvals wait. The cursor names the last approval of the page
/// before by its creation time and id, so it keeps its place when approvals before it are decided or expire.
public struct ApprovalListPage: Sendable, Equatable {
    public static let size = 50

    public let approvals: [Approval]
    /// The cursor of the page after this one; nil on the last page.
    public let next: String?
    /// All approvals listed, on every page.
    public let total: Int

    /// A cursor from outside that does not parse.
    public struct BadCursor: Error, Equatable, CustomStringConvertible {
        public let cursor: String
        public var description: String {
            "\"after\" must be the \"next\" value of a previous page (CREATED_MILLIS:ID), got \"\(cursor.prefix(120))\""
        }
    }

    /// `all` in any order; `after` is a previous page's `next`, nil for the first page.
    public init(_ all: [Approval], after: String?, size: Int = ApprovalListPage.size) throws(BadCursor) {
        let sorted = all.sorted(by: Self.precedes)
        var start = 0
        if let after {
            guard let cursor = Self.parse(after) else { throw BadCursor(cursor: after) }
            start = sorted.firstIndex { Self.precedes(cursor, ($0.createdAtMillis, $0.id)) } ?? sorted.count
        }
        let end = min(sorted.count, start + size)
        approvals = Array(sorted[start..<end])
        next = end < sorted.count ? approvals.last.map(Self.cursor(of:)) : nil
        total = sorted.count
    }

    public static func cursor(of approval: Approval) -> String { "\(approval.createdAtMillis):\(approval.id)" }

    static func parse(_ text: String) -> (Int64, String)? {
        guard let colon = text.firstIndex(of: ":"), let millis = Int64(text[..<colon]) else { return nil }
        let id = String(text[text.index(after: colon)...])
        guard !id.isEmpty, id.utf8.count <= 256 else { return nil }
        return (millis, id)
    }

    /// Creation time, then id by bytes: a total order that every store and page agrees on.
    static func precedes(_ a: Approval, _ b: Approval) -> Bool { precedes((a.createdAtMillis, a.id), (b.createdAtMillis, b.id)) }

    static func precedes(_ a: (Int64, String), _ b: (Int64, String)) -> Bool {
        a.0 != b.0 ? a.0 < b.0 : a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
    }
}
