import Crypto

/// The Redis scripts in this folder, compiled into the binary (SwiftPM `embedInCode`) so toolgate runs
/// without `lua/` beside it. The `.lua` files stay the only copy; a test proves the bytes are equal.
public enum RedisScript: String, CaseIterable, Sendable {
    case acquire
    case refund

    public var fileName: String { rawValue + ".lua" }

    public var bytes: [UInt8] {
        switch self {
        case .acquire: PackageResources.acquire_lua
        case .refund: PackageResources.refund_lua
        }
    }

    /// The SHA-1 that `EVALSHA` names the script by.
    public var sha1: String {
        Insecure.SHA1.hash(data: bytes).map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
        }.joined()
    }
}
