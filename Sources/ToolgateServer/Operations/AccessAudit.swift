import Crypto
import ToolgateCore

/// One decision on a request naming a resource or prompt, as the audit log records it (DESIGN.md section 8):
/// `kind` is `resource` or `prompt`, `name` the URI without its query (a query may carry a secret) or the prompt
/// name; the session only hashed. Written when the decision is made.
struct AccessAudit: Sendable {
    let timeMicros: Int64
    let grant: String
    let session: String?
    let agent: String
    /// The named server (DESIGN.md section 10); nil for the one unnamed upstream.
    var server: String? = nil
    let method: String
    let kind: ResourceAndPromptGate.Kind
    let name: String
    let decision: ToolgateMetrics.AccessDecision
    let policySHA256: String

    /// The JSON line, newline included.
    var line: [UInt8] {
        let object: JSONObject = [
            "time": .string(CallAudit.rfc3339(micros: timeMicros)),
            "grant": .string(grant),
            "session": session.map { .string(SHA256.hash(data: Array($0.utf8)).hexString) } ?? .null,
            "agent": .string(agent),
            "server": server.map(JSONValue.string) ?? .null,
            "method": .string(method),
            "kind": .string(kind.rawValue),
            "name": .string(kind == .resource ? Self.withoutQuery(name) : name),
            "decision": .string(decision.rawValue),
            "detail": decision == .allowed ? .null : .string("hidden"),
            "policySha256": .string(policySHA256),
        ]
        return JSONWriter.bytes(.object(object)) + [0x0A]
    }

    /// The URI up to its `?` (a fragment after the query goes with it).
    static func withoutQuery(_ uri: String) -> String {
        guard let question = uri.unicodeScalars.firstIndex(of: "?") else { return uri }
        return String(uri.unicodeScalars[..<question])
    }
}
