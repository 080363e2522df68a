/// When a call's limits are given back (DESIGN.md section 7, "Refunds"): only when the upstream
/// demonstrably did not run it. Never on 5xx, timeouts, broken streams or a client that went away: an
/// upstream can run the tool and then fail, and an agent can cause exactly that (a `DELETE` of its own
/// session mid-call makes the official SDK's server answer 500 after the tool ran).
public enum RefundRule {
    /// JSON-RPC codes that mean "refused before running": parse errors, invalid requests, unknown methods,
    /// invalid params, and the per-request era's header errors.
    public static let refusalCodes: Set<Int> = [-32700, -32600, -32601, -32602, -32020]

    /// The request never reached the upstream whole: no connection, or the body was not completely sent.
    public static func refunds(afterTransportFailure error: UpstreamError) -> Bool {
        !error.requestSent
    }

    /// An answer refunds only when it is HTTP 4xx and every message in it is a JSON-RPC error of a
    /// request-validation code.
    public static func refunds(status: Int, body: JSONValue?) -> Bool {
        guard (400..<500).contains(status), let body else { return false }
        let messages: [JSONValue]
        if case .array(let elements) = body { messages = elements } else { messages = [body] }
        guard !messages.isEmpty else { return false }
        return messages.allSatisfy { message in
            guard case .object(let object) = message, object["result"] == nil, case .object(let error) = object["error"],
                case .number(let code) = error["code"], let value = code.int64Value
            else { return false }
            return refusalCodes.contains(Int(value))
        }
    }
}
