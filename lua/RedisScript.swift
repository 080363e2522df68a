import Crypto

/// The Redis scripts in this folder, compiled into the binary (SwiftPM `embedInCode`) so toolgate runs
/// without `lua/` beside it. The `.lua` files stay the only copy; a test proves the bytes are equal.
public enum RedisScript: String, CaseIterable, Sendable {
    case acquire
    case refund
    case approvalStart = "approval_start"
    case approvalDecide = "approval_decide"
    case approvalConsume = "approval_consume"

    public var fileName: String { rawValue + ".lua" }

    public var bytes: [UInt8] {
        switch self {
        case .acquire: PackageResources.acquire_lua
        case .refund: PackageResources.refund_lua
        case .approvalStart: PackageResources.approval_start_lua
        case .approvalDecide: PackageResources.approval_decide_lua
        case .approvalConsume: PackageResources.approval_consume_lua
        }
    }

    /// The SHA-1 that `EVALSHA` names the script by; computed once, it is on every decision's path.
    public var sha1: String { Self.digests[self]! }

    private static let digests: [RedisScript: String] = Dictionary(
        uniqueKeysWithValues: allCases.map { script in
            let hex = Insecure.SHA1.hash(data: script.bytes).map { byte in
                let digits = Array("0123456789abcdef")
                return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            }.joined()
            return (script, hex)
        })
}
