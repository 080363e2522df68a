import Crypto

/// Bearer tokens → grant names. Only SHA-256 digests of tokens are held; a presented token is hashed and
/// compared with every digest in constant time, so neither the table nor the timing reveals a token.
public struct GrantTable: Sendable, Equatable {
    public struct Grant: Sendable, Equatable {
        public let name: String
        let digest: [UInt8]
        /// The environment variable the token came from (`tokenEnv`), if it did: a secret a child process must not get.
        public var tokenVariable: String? = nil
    }

    public let grants: [Grant]

    public init(grants: [Grant]) { self.grants = grants }

    /// The grant for `token`, or nil. Always scans every grant.
    public func grant(forToken token: String) -> String? {
        let presented = Array(SHA256.hash(data: Array(token.utf8)))
        var found: String?
        for grant in grants where Self.constantTimeEqual(grant.digest, presented) && found == nil {
            found = grant.name
        }
        return found
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// Parses a grants file: `{"grants": [{"name": …, "sha256": …} | {"name": …, "tokenEnv": …}]}`.
    /// `environment` resolves `tokenEnv`; the token itself is hashed at once and not kept.
    public static func parse(
        _ bytes: [UInt8], file: String, environment: [String: String]
    ) throws(PolicyValidationError) -> GrantTable {
        var errors: [PolicyError] = []
        func fail(_ path: String, _ message: String) { errors.append(PolicyError(file: file, path: path, message: message)) }
        // Like policies: `.yaml`/`.yml` is YAML, anything else JSON.
        let document = try ConfigDocument.parse(bytes, file: file)
        guard case .object(let root) = document else {
            throw PolicyValidationError(errors: [PolicyError(file: file, path: "", message: "must be an object, got \(document.typeName)")])
        }
        for key in root.keys where key != "grants" { fail(key, NameSuggestion.unknownKeyMessage(key, allowed: ["grants"])) }
        guard case .array(let entries) = root["grants"] ?? .null else {
            fail("grants", "required; must be an array")
            throw PolicyValidationError(errors: errors)
        }
        var grants: [Grant] = []
        var names: Set<String> = []
        for (i, entry) in entries.enumerated() {
            let path = "grants[\(i)]"
            guard case .object(let object) = entry else {
                fail(path, "must be an object, got \(entry.typeName)")
                continue
            }
            for key in object.keys where !["name", "sha256", "tokenEnv"].contains(key) {
                fail("\(path).\(key)", NameSuggestion.unknownKeyMessage(key, allowed: ["name", "sha256", "tokenEnv"]))
            }
            guard case .string(let name) = object["name"] ?? .null, !name.isEmpty else {
                fail("\(path).name", "required; must be a non-empty string")
                continue
            }
            if !names.insert(name).inserted { fail("\(path).name", "grant \"\(name)\" is defined twice") }
            switch (object["sha256"], object["tokenEnv"]) {
            case (.string(let hex)?, nil):
                guard let digest = Self.hexBytes(hex), digest.count == 32 else {
                    fail("\(path).sha256", "must be 64 hex characters (the SHA-256 of the token)")
                    continue
                }
                grants.append(Grant(name: name, digest: digest))
            case (nil, .string(let variable)?):
                guard let token = environment[variable], !token.isEmpty else {
                    fail("\(path).tokenEnv", "environment variable \(variable) is not set or empty")
                    continue
                }
                grants.append(Grant(name: name, digest: Array(SHA256.hash(data: Array(token.utf8))), tokenVariable: variable))
            case (nil, nil):
                fail(path, "needs \"sha256\" or \"tokenEnv\"")
            case (.some, .some):
                fail(path, "give \"sha256\" or \"tokenEnv\", not both")
            default:
                fail(path, "\"sha256\" and \"tokenEnv\" must be strings")
            }
        }
        guard errors.isEmpty else { throw PolicyValidationError(errors: errors) }
        return GrantTable(grants: grants)
    }

    static func hexBytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.lowercased().utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
