/// Where one request at the merged endpoint goes (DESIGN.md section 10): tools and prompts by their `SERVER__`
/// prefix (the server gets its own name back), resources by who listed them, completions by their `ref`.
public struct MergedRoute: Sendable {
    public let server: String
    /// The message as the server must see it.
    public let message: JSONValue

    public init(server: String, message: JSONValue) {
        self.server = server
        self.message = message
    }

    public enum Finding: Sendable {
        case routed(MergedRoute)
        case refused(JSONRPCFailure)
        /// No server is known to hold this URI yet.
        case unknownResource(String)
    }

    public static func find(
        _ message: JSONRPCMessage, method: String, names: MergedNames, owner: (String) -> String?
    ) -> Finding {
        let params = message.params?.objectValue ?? JSONObject()
        switch method {
        case "tools/call", "prompts/get":
            guard case .string(let merged)? = params["name"] else {
                return .refused(JSONRPCFailure(.invalidParams, "params.name must be a string"))
            }
            guard let (server, own) = names.route(merged) else {
                let what = method == "tools/call" ? "Unknown tool" : "Unknown prompt"
                return .refused(JSONRPCFailure(
                    .invalidParams, "\(what): \(merged.prefix(200)) (names here are SERVER\(names.separator)NAME)"))
            }
            var renamed = params
            renamed["name"] = .string(own)
            return .routed(MergedRoute(server: server, message: replacing(params: renamed, in: message.raw)))
        case "completion/complete":
            guard case .object(var ref)? = params["ref"] else {
                return .refused(JSONRPCFailure(.invalidParams, "params.ref must be an object"))
            }
            switch ref["type"]?.stringValue {
            case "ref/prompt":
                guard case .string(let merged)? = ref["name"], let (server, own) = names.route(merged) else {
                    return .refused(JSONRPCFailure(.invalidParams, "Unknown prompt in params.ref.name"))
                }
                ref["name"] = .string(own)
                var renamed = params
                renamed["ref"] = .object(ref)
                return .routed(MergedRoute(server: server, message: replacing(params: renamed, in: message.raw)))
            case "ref/resource":
                guard case .string(let uri)? = ref["uri"] else {
                    return .refused(JSONRPCFailure(.invalidParams, "params.ref.uri must be a string"))
                }
                return byOwner(uri, message: message, owner: owner)
            default:
                return .refused(JSONRPCFailure(.invalidParams, "params.ref.type must be ref/prompt or ref/resource"))
            }
        case "resources/read", "resources/subscribe", "resources/unsubscribe":
            guard case .string(let uri)? = params["uri"] else {
                return .refused(JSONRPCFailure(.invalidParams, "params.uri must be a string"))
            }
            return byOwner(uri, message: message, owner: owner)
        default:
            return .refused(JSONRPCFailure(
                .methodNotFound, "Method not found: \(method.prefix(100)) (the merged endpoint routes tools, prompts, resources and completions)"))
        }
    }

    private static func byOwner(_ uri: String, message: JSONRPCMessage, owner: (String) -> String?) -> Finding {
        guard let server = owner(uri) else { return .unknownResource(uri) }
        return .routed(MergedRoute(server: server, message: message.raw))
    }

    private static func replacing(params: JSONObject, in raw: JSONValue) -> JSONValue {
        guard case .object(var object) = raw else { return raw }
        object["params"] = .object(params)
        return .object(object)
    }
}
