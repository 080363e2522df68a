/// Requests that name a resource or prompt, under the policy's `resources` and `prompts` sections (DESIGN.md
/// section 4): `resources/read`, `resources/subscribe`, `resources/unsubscribe` (by `uri`), `prompts/get` (by
/// `name`) and `completion/complete` (by `ref.name`, a prompt, and `ref.uri`, a resource template). Without the
/// section the request passes untouched.
///
/// A request naming something the policy keeps out is not answered here: the proxy sends it upstream about a
/// name that cannot exist (`AbsentNameProbe`), so the agent gets the upstream's own answer for something it does
/// not have and cannot tell hidden from absent.
public enum ResourceAndPromptGate {
    public enum Kind: String, Sendable {
        case resource, prompt
    }

    /// One name in a request, as the policy judged it.
    public struct Named: Sendable, Equatable {
        public let kind: Kind
        /// The URI, template string or prompt name as the agent sent it.
        public let name: String
        /// Where it sits in `params`: `["uri"]`, `["name"]`, `["ref", "uri"]` or `["ref", "name"]`.
        public let path: [String]
        public let allowed: Bool
    }

    public enum Judgement: Sendable, Equatable {
        /// Nothing the policy judges.
        case pass
        /// The request is malformed where the policy must look: this error answers it.
        case answer(JSONValue)
        /// What the request names; any not allowed means the request is refused.
        case judged(method: String, [Named])

        /// The names the policy keeps out.
        public var keptOut: [Named] {
            guard case .judged(_, let names) = self else { return [] }
            return names.filter { !$0.allowed }
        }
    }

    public static func judge(_ message: JSONRPCMessage, policy: Policy) -> Judgement {
        guard case .request(let method) = message.kind, policy.resources != nil || policy.prompts != nil else { return .pass }
        let id = message.id ?? .null
        let params = message.params ?? .object(JSONObject())
        func malformed(_ what: String) -> Judgement {
            .answer(JSONRPCResponse.error(id: id, code: .invalidParams, message: "\(method) needs \(what)"))
        }
        if method.isExactly("resources/read") || method.isExactly("resources/subscribe")
            || method.isExactly("resources/unsubscribe")
        {
            guard let resources = policy.resources else { return .pass }
            guard case .string(let uri) = params["uri"] else { return malformed("a string uri") }
            return .judged(method: method, [Named(kind: .resource, name: uri, path: ["uri"], allowed: resources.allows(uri))])
        }
        if method.isExactly("prompts/get") {
            guard let prompts = policy.prompts else { return .pass }
            guard case .string(let name) = params["name"] else { return malformed("a string name") }
            return .judged(method: method, [Named(kind: .prompt, name: name, path: ["name"], allowed: prompts.allows(name))])
        }
        if method.isExactly("completion/complete") {
            // Judged by what the reference names, whatever its `type` says: a lenient server may go by the fields.
            guard case .object(let ref)? = params["ref"] else { return .pass }
            var names: [Named] = []
            if let prompts = policy.prompts, let name = ref["name"] {
                guard case .string(let name) = name else { return malformed("a string ref.name") }
                names.append(Named(kind: .prompt, name: name, path: ["ref", "name"], allowed: prompts.allows(name)))
            }
            if let resources = policy.resources, let uri = ref["uri"] {
                guard case .string(let uri) = uri else { return malformed("a string ref.uri") }
                names.append(Named(kind: .resource, name: uri, path: ["ref", "uri"], allowed: resources.allows(uri)))
            }
            return names.isEmpty ? .pass : .judged(method: method, names)
        }
        return .pass
    }

    /// The `Mcp-Name` header to send instead of the agent's, when it names (for `resources/read` or `prompts/get`)
    /// something the policy keeps out that the body does not: a stand-in (`AbsentNameProbe.standIn`), so the
    /// upstream, and any proxy after toolgate that routes by the header, never sees the name. The upstream then
    /// refuses the mismatch as it would for any header naming something else than the body. Nil: send as is.
    public static func nameHeaderStandIn(
        _ message: JSONRPCMessage, header: String?, policy: Policy, token: () -> String
    ) -> String? {
        guard let header, let method = message.method, let name = MCPHeaderCheck.decodeName(header) else { return nil }
        if method.isExactly("resources/read"), let resources = policy.resources, !resources.allows(name) {
            return AbsentNameProbe.schemePrefix(of: name) + token()
        }
        if method.isExactly("prompts/get"), let prompts = policy.prompts, !prompts.allows(name) { return token() }
        return nil
    }
}
