/// Tool and prompt names at the merged endpoint (DESIGN.md section 10): `SERVER<separator>name`, so two servers'
/// `search` tools stay apart and the policy of each server still sees its own name.
public struct MergedNames: Sendable, Equatable {
    public let separator: String
    /// Longest first: with servers `a` and `a__b`, `a__b__x` is `x` of `a__b`, not `b__x` of `a`.
    private let servers: [String]

    public init(servers: [String], separator: String) {
        self.separator = separator
        self.servers = servers.sorted { $0.utf8.count > $1.utf8.count }
    }

    /// The name the agent sees, or nil when it would break MCP's tool-name rules (the tool is then left out).
    public func exposed(server: String, name: String) -> String? {
        let merged = server + separator + name
        return Self.isValidToolName(merged) ? merged : nil
    }

    /// Which server a merged name belongs to, and the server's own name for it.
    public func route(_ merged: String) -> (server: String, name: String)? {
        for server in servers {
            let prefix = server + separator
            guard merged.utf8.count > prefix.utf8.count, merged.utf8.starts(with: prefix.utf8) else { continue }
            let name = String(decoding: merged.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
            return (server, name)
        }
        return nil
    }

    /// MCP's tool-name rules: 1 to 128 characters of `A-Z a-z 0-9 _ - .`.
    public static func isValidToolName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...128).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                true
            default: false
            }
        }
    }

    /// `--name-separator`: it must itself be made of tool-name characters, or no merged name could be valid.
    public static func separatorProblem(_ separator: String) -> String? {
        guard !separator.isEmpty else { return "the name separator must not be empty" }
        guard separator.utf8.count <= 8, isValidToolName(separator) else {
            return "the name separator \"\(separator.prefix(16))\" must be 1 to 8 characters of A-Z a-z 0-9 _ - ."
        }
        return nil
    }
}
