import Crypto

/// What one approval is for (DESIGN.md section 6): this grant calling this tool with exactly these arguments under
/// the rules that decide this tool (its entry and the `"*"` entry). Approving one call never approves another with
/// other arguments, or after this tool's rules changed; an edit elsewhere in the policy leaves it valid.
public struct ApprovalBinding: Sendable, Equatable {
    public let grant: String
    /// The named server the tool is on (DESIGN.md section 10); nil for the one unnamed upstream. Approving `delete`
    /// on one server never approves another server's `delete`.
    public let server: String?
    public let tool: String
    /// `CanonicalJSON` of the arguments: what the approver is shown, and what is hashed.
    public let canonicalArguments: String
    /// The policy in force when the approval was asked for: shown to the approver, not bound.
    public let policySHA256: String
    /// `Policy.decidingDigest(forTool:)`: what the approval is bound to.
    public let decidedBy: String

    public init(
        grant: String, server: String? = nil, tool: String, arguments: JSONValue, policySHA256: String, decidedBy: String? = nil
    ) {
        self.grant = grant
        self.server = server
        self.tool = tool
        self.canonicalArguments = CanonicalJSON.string(arguments)
        self.policySHA256 = policySHA256
        self.decidedBy = decidedBy ?? policySHA256
    }

    /// SHA-256 of the canonical arguments, hex.
    public var argumentsSHA256: String { SHA256.hash(data: Array(canonicalArguments.utf8)).hexString }

    /// The binding as one key, first 32 hex characters of SHA-256 over its parts, each length-prefixed so no two
    /// bindings share a text. Outside values never shape a store key: only this hash does.
    public var key: String {
        var text: [UInt8] = []
        // The server is a part only when there is one, so the unnamed upstream's keys are what they always were.
        for part in [grant, tool, argumentsSHA256, decidedBy] + (server.map { ["server", $0] } ?? []) {
            text += Array(String(part.utf8.count).utf8) + [UInt8(ascii: ":")] + Array(part.utf8)
        }
        return String(SHA256.hash(data: text).hexString.prefix(32))
    }
}
