/// `resources/read` and `prompts/get` under the policy's `resources` and `prompts` sections (DESIGN.md section 4):
/// what the policy keeps out is answered as the protocol answers an unknown one, so the agent cannot tell it from
/// a resource or prompt that does not exist. Without the section the request passes untouched.
public enum ResourceAndPromptGate {
    /// The error to answer instead of forwarding, or nil to forward.
    public static func refusal(for message: JSONRPCMessage, policy: Policy) -> JSONValue? {
        let id = message.id ?? .null
        switch message.known {
        case .resourcesRead?:
            guard let resources = policy.resources else { return nil }
            guard let uri = message.raw["params"]?["uri"]?.stringValue else {
                return JSONRPCResponse.error(id: id, code: .invalidParams, message: "resources/read needs a string uri")
            }
            guard !resources.allows(uri) else { return nil }
            var error = JSONRPCResponse.error(id: id, code: .resourceNotFound, message: "Resource not found")
            if case .object(var object) = error, case .object(var body) = object["error"] {
                body["data"] = ["uri": .string(uri)]
                object["error"] = .object(body)
                error = .object(object)
            }
            return error
        case .promptsGet?:
            guard let prompts = policy.prompts else { return nil }
            guard let name = message.raw["params"]?["name"]?.stringValue else {
                return JSONRPCResponse.error(id: id, code: .invalidParams, message: "prompts/get needs a string name")
            }
            guard !prompts.allows(name) else { return nil }
            return JSONRPCResponse.error(id: id, code: .invalidParams, message: "Unknown prompt: \(name)")
        default:
            return nil
        }
    }
}
