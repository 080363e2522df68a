/// One approval as the store holds it.
public struct Approval: Sendable, Equatable {
    public enum State: String, Sendable {
        case pending
        case approved
        case denied
    }

    /// `<binding key>-<random>`: the binding key finds the record, the random part tells one request for approval
    /// from a later one for the same binding.
    public let id: String
    public let state: State
    public let grant: String
    /// The named server the tool is on; nil for the one unnamed upstream.
    public let server: String?
    public let tool: String
    /// The canonical arguments (`CanonicalJSON`): shown to the approver, never logged.
    public let arguments: String
    public let policySHA256: String
    public let createdAtMillis: Int64
    public let expiresAtMillis: Int64

    public init(
        id: String, state: State, grant: String, server: String? = nil, tool: String, arguments: String, policySHA256: String,
        createdAtMillis: Int64, expiresAtMillis: Int64
    ) {
        self.id = id
        self.state = state
        self.grant = grant
        self.server = server
        self.tool = tool
        self.arguments = arguments
        self.policySHA256 = policySHA256
        self.createdAtMillis = createdAtMillis
        self.expiresAtMillis = expiresAtMillis
    }

    public var bindingKey: String { Approval.bindingKey(ofID: id) }

    /// The binding key part of an id; nil-safe for ids from outside (the admin API): any text gives some key.
    public static func bindingKey(ofID id: String) -> String {
        String(id.prefix { $0 != "-" })
    }

    /// An id for a new request: the binding key, a dash, 16 random hex digits.
    public static func newID(for binding: ApprovalBinding) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return binding.key + "-" + random.hexString
    }

    /// Whether an id from outside has the shape `newID` gives: a 32-hex binding key, a dash, 16 hex digits.
    public static func isWellFormed(id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 49, bytes[32] == UInt8(ascii: "-") else { return false }
        return bytes.enumerated().allSatisfy { index, byte in
            index == 32 || (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
        }
    }
}

/// What asking for an approval found.
public enum ApprovalStart: Sendable, Equatable {
    /// A human approved this binding and the approval is unused: the call may use it (`consume`) once its limits
    /// admit it; if they refuse, it stays for a retry.
    case approved(id: String)
    /// A request for approval is pending: created now, or already there (another identical call asked first).
    case pending(Approval)
    /// A human denied this binding; the denial stands until it expires.
    case denied(id: String)
    /// Nothing is recorded for the binding (only when asked not to create a request).
    case absent
    /// The grant already has its maximum of pending requests: none was created.
    case tooManyPending
}

/// Whether a new request may be created by `ApprovalStore.start`, and how many one grant may have open.
public enum ApprovalCreation: Sendable, Equatable {
    /// Only look: an absent binding reads `.absent`.
    case lookOnly
    /// Create a pending request unless the grant already has `maxPendingPerGrant` open.
    case create(maxPendingPerGrant: Int)
}

public enum ApprovalDecisionOutcome: Sendable, Equatable {
    case decided(Approval)
    /// No pending approval has this id: it expired, was used, or never existed.
    case notFound
    /// Decided before; the earlier decision stands.
    case alreadyDecided(Approval)
}

/// Where approvals live (DESIGN.md section 6): the store every sidecar of a fleet shares, so one sidecar sees and
/// decides what another is waiting on. Every operation on one approval is atomic.
public protocol ApprovalStore: Sendable {
    /// Finds the binding's approval, or (`creation`) creates the pending request with `newID`, living `ttlSeconds`.
    /// Nothing is used up here: see `consume`.
    func start(_ binding: ApprovalBinding, newID: String, ttlSeconds: Int, creation: ApprovalCreation) async throws(LimitStoreError)
        -> ApprovalStart
    /// Uses up the approved approval `id`: true when it was approved and unused, and now is used (by this call only).
    func consume(id: String) async throws(LimitStoreError) -> Bool
    func decide(id: String, approve: Bool) async throws(LimitStoreError) -> ApprovalDecisionOutcome
    /// Every approval not yet expired or used, oldest first.
    func list() async throws(LimitStoreError) -> [Approval]
    /// The states of these approvals; an id that is missing is gone (expired, used, or replaced).
    func states(ids: [String]) async throws(LimitStoreError) -> [String: Approval.State]
}
