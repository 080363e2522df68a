/// The MCP sessions that `session` scope may count: only ids toolgate saw the upstream issue to a grant
/// (the `Mcp-Session-Id` of an `initialize` answer it relayed), until the session is deleted or idle for
/// `idleMicros`. Any other id (made up, replayed by another grant, or sent to an upstream that issues none)
/// is not a session, and its calls count against the grant: an agent cannot mint fresh counters by
/// inventing ids, and one grant can never reach another's session counters.
///
/// A plain struct with an injected time, so the proxy wraps it in a lock and tests drive it directly.
/// Keys are bytes, not `String`s: hashing an id from outside must cost time linear in its length.
public struct SessionRegistry: Sendable {
    public let capacity: Int
    public let idleMicros: Int64
    private var lastSeen: [[UInt8]: Int64] = [:]

    public init(capacity: Int = 100_000, idleMicros: Int64 = 86_400_000_000) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.idleMicros = idleMicros
    }

    public var count: Int { lastSeen.count }

    private static func key(grant: String, session: String) -> [UInt8] {
        // Length-prefixed, so no (grant, session) pair can collide with another.
        Array(String(grant.utf8.count).utf8) + [0x3A] + Array(grant.utf8) + Array(session.utf8)
    }

    /// The upstream issued `session` in an answer relayed to `grant`.
    public mutating func issued(grant: String, session: String, now: Int64) {
        lastSeen[Self.key(grant: grant, session: session)] = now
        if lastSeen.count > capacity { evict(now: now) }
    }

    /// Whether `session` is a live session of `grant`; a live one counts as used now.
    public mutating func isSession(grant: String, session: String, now: Int64) -> Bool {
        let key = Self.key(grant: grant, session: session)
        guard let seen = lastSeen[key] else { return false }
        guard now - seen < idleMicros else {
            lastSeen[key] = nil
            return false
        }
        lastSeen[key] = now
        return true
    }

    /// The session was deleted.
    public mutating func ended(grant: String, session: String) {
        lastSeen[Self.key(grant: grant, session: session)] = nil
    }

    /// Drops idle sessions, then, if still over capacity, the least recently used quarter. A forgotten
    /// session falls back to the grant's counter, which only ever errs toward fewer calls.
    private mutating func evict(now: Int64) {
        lastSeen = lastSeen.filter { now - $0.value < idleMicros }
        guard lastSeen.count > capacity else { return }
        let keep = capacity - capacity / 4
        let newest = lastSeen.sorted { $0.value > $1.value }.prefix(keep)
        lastSeen = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }
}
