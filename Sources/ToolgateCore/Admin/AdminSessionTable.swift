import Crypto

/// The admin page's sign-ins (DESIGN.md section 6, "Admin sign-in"): each is a random secret the page holds in
/// `sessionStorage` and sends as a header, never a cookie, because cookies reach every port of a host. The table
/// keeps only the secrets' SHA-256, each with an idle and an absolute expiry; signing out deletes the entry.
/// Bounded: past `capacity` live sessions, the one used least recently is dropped, so a sign-in always works.
///
/// A plain value driven by the instants it is given (microseconds of any clock), so expiry is tested without
/// sleeping; `AdminSessions` in the server holds it behind a lock with the real clock.
public struct AdminSessionTable: Sendable {
    public struct Limits: Sendable, Equatable {
        /// A session unused this long ends: an approver who walked away is signed out.
        public var idleMicros: Int64
        /// A session this old ends however busy it is: a leaked secret works for a bounded time.
        public var absoluteMicros: Int64
        public var capacity: Int

        public init(idleMicros: Int64 = 30 * 60 * 1_000_000, absoluteMicros: Int64 = 12 * 3_600 * 1_000_000, capacity: Int = 64) {
            precondition(idleMicros > 0 && absoluteMicros > 0 && capacity > 0)
            self.idleMicros = idleMicros
            self.absoluteMicros = absoluteMicros
            self.capacity = capacity
        }
    }

    struct Entry: Sendable {
        let createdMicros: Int64
        var lastUsedMicros: Int64
    }

    public let limits: Limits
    /// Keyed by the digest of the secret (bytes, never `String`: no canonical-equivalence hashing of outside text).
    private var entries: [[UInt8]: Entry] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Live sessions (expired ones still held count until the next change prunes them).
    public var count: Int { entries.count }

    /// Bytes of a new secret: 256 bits, well above the 128 the design asks for.
    public static let secretBytes = 32

    /// A new secret, hex: `secretBytes` from the generator given (the system's CSPRNG outside tests).
    public static func newSecret<G: RandomNumberGenerator>(using generator: inout G) -> String {
        (0..<secretBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
    }

    /// Starts a session for `secret`; returns how many sessions were dropped to stay within `capacity`.
    @discardableResult
    public mutating func open(secret: String, now: Int64) -> Int {
        prune(now: now)
        var dropped = 0
        while entries.count >= limits.capacity, let oldest = entries.min(by: { $0.value.lastUsedMicros < $1.value.lastUsedMicros }) {
            entries[oldest.key] = nil
            dropped += 1
        }
        entries[Self.key(secret)] = Entry(createdMicros: now, lastUsedMicros: now)
        return dropped
    }

    /// Whether `secret` names a live session; a use renews its idle expiry (never its absolute one).
    public mutating func use(secret: String, now: Int64) -> Bool {
        let key = Self.key(secret)
        guard var entry = entries[key] else { return false }
        guard isLive(entry, now: now) else {
            entries[key] = nil
            return false
        }
        entry.lastUsedMicros = max(entry.lastUsedMicros, now)
        entries[key] = entry
        return true
    }

    /// Signs out: the secret stops working at once. False when it named no session.
    @discardableResult
    public mutating func close(secret: String) -> Bool {
        entries.removeValue(forKey: Self.key(secret)) != nil
    }

    public mutating func prune(now: Int64) {
        entries = entries.filter { isLive($0.value, now: now) }
    }

    private func isLive(_ entry: Entry, now: Int64) -> Bool {
        now - entry.lastUsedMicros < limits.idleMicros && now - entry.createdMicros < limits.absoluteMicros
    }

    private static func key(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(secret.utf8)))
    }
}
