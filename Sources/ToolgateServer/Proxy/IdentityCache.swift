import Synchronization
import ToolgateCore

/// Each grant's `Identity`, made once: its subject hashes cost a SHA-256 each, and every request needs one. Grant
/// names come from the grants file (or are `default`), never from a request, so the cache stays as small as that
/// file, across reloads too.
final class IdentityCache: Sendable {
    let agent: String
    private let identities = Mutex<[String: Identity]>([:])

    init(agent: String) { self.agent = agent }

    func identity(grant: String) -> Identity {
        if let known = identities.withLock({ $0[grant] }) { return known }
        let made = Identity(grant: grant, agent: agent)
        identities.withLock { $0[grant] = made }
        return made
    }
}
