import Crypto

/// Builds store keys: `<prefix>:{<scope>:<subject>}:<counter>`.
///
/// Subjects come from outside (a session id, a grant name), so they are hashed: nothing an agent sends can
/// change a key's structure or its cluster slot. The hash tag keeps one subject's keys in one slot.
public struct CounterKey: Sendable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    /// A request without a session counts its `session` limits against this subject. It can never equal a
    /// real session id's subject, because HTTP header values cannot contain NUL.
    static func sessionFallbackSubject(grant: String) -> String { "\u{0}grant:" + grant }

    /// A session's subject: the grant, length-prefixed, then the session id. Never starts with NUL, so it
    /// cannot equal a fallback subject.
    static func sessionSubject(grant: String, session: String) -> String {
        String(grant.utf8.count) + ":" + grant + session
    }

    /// The key, and the scope that actually applied (`session` falls back to `grant`).
    public func resolve(
        counter: String, scope: LimitScope, identity: Identity
    ) -> (key: String, appliedScope: LimitScope) {
        switch scope {
        case .global: return (prefix + ":{global:_}:" + counter, .global)
        case .grant: return (prefix + ":{" + identity.grantTag + "}:" + counter, .grant)
        case .agent: return (prefix + ":{" + identity.agentTag + "}:" + counter, .agent)
        case .session:
            return (prefix + ":{" + identity.sessionTag + "}:" + counter, identity.session == nil ? .grant : .session)
        }
    }

    /// First 32 hex characters of SHA-256.
    public static func subjectHash(_ subject: String) -> String {
        WorkMeter.charge(subject.utf8.count)
        let digest = SHA256.hash(data: Array(subject.utf8))
        return String(Array(digest).prefix(16).hexString)
    }

    /// Why a prefix is unusable, or nil when it is fine. Braces would break the hash tag.
    public static func problem(withPrefix prefix: String) -> String? {
        if prefix.isEmpty { return "key prefix must not be empty" }
        if prefix.contains("{") || prefix.contains("}") { return "key prefix may not contain braces" }
        return nil
    }
}
