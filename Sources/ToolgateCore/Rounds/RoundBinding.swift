import Crypto

/// One relayed `requestState` of a multi-round `tools/call` (DESIGN.md section 7), bound to the grant that got it,
/// the tool, the call's exact arguments and what in the policy decided it. Only its hash is ever stored: a follow-up
/// matches only if it comes from the same grant, for the same tool, with the same arguments, carrying the state byte
/// for byte, while the policy entry that charged the first round is unchanged (a reload that puts the tool under
/// approval or a new limit applies to the next round).
///
/// The arguments are bound as well as grant and tool (which DESIGN names) because limits may charge by argument:
/// a spend cap charged `amount: 1` must not let a follow-up with `amount: 1000` through uncharged.
public struct RoundBinding: Sendable, Hashable {
    /// Hex SHA-256 over the length-prefixed parts; the store key's only outside-derived part.
    public let key: String

    /// `decidedBy`: `Policy.decidingDigest(forTool:)` of the policy the call is judged by.
    public init(grant: String, tool: String, arguments: JSONValue, decidedBy: String, requestState: String) {
        var text: [UInt8] = []
        let canonical = CanonicalJSON.bytes(arguments)
        for part in [Array(grant.utf8), Array(tool.utf8), canonical, Array(decidedBy.utf8), Array(requestState.utf8)] {
            text += Array(String(part.count).utf8) + [UInt8(ascii: ":")] + part
        }
        key = SHA256.hash(data: text).hexString
    }

    /// How long a relayed state is remembered: a user may take minutes to answer.
    public static let lifetimeSeconds = 600
}
