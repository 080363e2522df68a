/// One JSON-RPC 2.0 message from the agent. toolgate looks inside only as far as it must: the method,
/// the id, and for `tools/call` the tool name and arguments. Everything is forwarded as the agent sent it.
public struct JSONRPCMessage: Sendable {
    public enum Kind: Sendable, Equatable {
        case request(method: String)
        case notification(method: String)
        /// A response to a request the server sent the client (sampling, elicitation, roots).
        case response
    }

    public let kind: Kind
    /// The methods toolgate acts on, recognized once by exact comparison (never by canonical equivalence).
    public let known: KnownMethod?
    /// `nil` for notifications.
    public let id: JSONValue?
    public let params: JSONValue?
    /// The whole message, for forwarding.
    public let raw: JSONValue

    public var method: String? {
        switch kind {
        case .request(let m), .notification(let m): m
        case .response: nil
        }
    }

    /// Validates the JSON-RPC 2.0 shape.
    public init(_ value: JSONValue) throws(JSONRPCFailure) {
        guard case .object(let object) = value else {
            throw JSONRPCFailure(.invalidRequest, "a JSON-RPC message must be an object")
        }
        guard object["jsonrpc"] == .string("2.0") else {
            throw JSONRPCFailure(.invalidRequest, "\"jsonrpc\" must be \"2.0\"")
        }
        let id = object["id"]
        if let id {
            switch id {
            case .string, .number, .null: break
            default: throw JSONRPCFailure(.invalidRequest, "\"id\" must be a string, a number or null")
            }
        }
        raw = value
        if let methodValue = object["method"] {
            guard case .string(let method) = methodValue else {
                throw JSONRPCFailure(.invalidRequest, "\"method\" must be a string")
            }
            let params = object["params"]
            if let params {
                switch params {
                case .object, .array: break
                default: throw JSONRPCFailure(.invalidRequest, "\"params\" must be an object or an array")
                }
            }
            self.params = params
            self.id = id
            kind = id == nil ? .notification(method: method) : .request(method: method)
            known = KnownMethod(exactly: method)
        } else if object["result"] != nil || object["error"] != nil, let id {
            self.params = nil
            self.id = id
            kind = .response
            known = nil
        } else {
            throw JSONRPCFailure(.invalidRequest, "a JSON-RPC message needs \"method\", or \"id\" with \"result\" or \"error\"")
        }
    }

    /// For `tools/call`: the tool name and arguments, or why they are unusable.
    public func toolCall() throws(JSONRPCFailure) -> ToolCall {
        guard case .object(let params) = params ?? .object(JSONObject()) else {
            throw JSONRPCFailure(.invalidParams, "tools/call params must be an object")
        }
        guard case .string(let name) = params["name"] else {
            throw JSONRPCFailure(.invalidParams, "tools/call needs a string \"name\"")
        }
        // Any other type is the upstream's to refuse; the call is then charged as a new one.
        let state = params["requestState"]?.stringValue
        switch params["arguments"] {
        case nil, .null: return ToolCall(name: name, requestState: state)
        case .object(let arguments): return ToolCall(name: name, arguments: .object(arguments), requestState: state)
        default: throw JSONRPCFailure(.invalidParams, "tools/call \"arguments\" must be an object")
        }
    }
}

/// The methods whose handling differs from plain forwarding.
public enum KnownMethod: Sendable, Equatable {
    case toolsCall
    case toolsList
    case initialize
    case resourcesRead
    case resourcesList
    case resourceTemplatesList
    case promptsGet
    case promptsList

    public init?(exactly method: String) {
        if method.isExactly("tools/call") {
            self = .toolsCall
        } else if method.isExactly("tools/list") {
            self = .toolsList
        } else if method.isExactly("initialize") {
            self = .initialize
        } else if method.isExactly("resources/read") {
            self = .resourcesRead
        } else if method.isExactly("resources/list") {
            self = .resourcesList
        } else if method.isExactly("resources/templates/list") {
            self = .resourceTemplatesList
        } else if method.isExactly("prompts/get") {
            self = .promptsGet
        } else if method.isExactly("prompts/list") {
            self = .promptsList
        } else {
            return nil
        }
    }

    /// A list the policy may filter: its answer is judged whatever content type it claims.
    public var isFilteredList: Bool { self == .toolsList || self == .resourcesList || self == .resourceTemplatesList || self == .promptsList }
}

/// A request body: one message or a batch (a JSON array, as in revision 2025-03-26).
public enum JSONRPCBody: Sendable {
    case single(JSONRPCMessage)
    case batch([JSONRPCMessage])

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONRPCFailure) -> JSONRPCBody {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw JSONRPCFailure(.parseError, "parse error: \(error.description)")
        }
        if case .array(let elements) = value {
            guard !elements.isEmpty else { throw JSONRPCFailure(.invalidRequest, "an empty batch is not a valid request") }
            var messages: [JSONRPCMessage] = []
            messages.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                do {
                    messages.append(try JSONRPCMessage(element))
                } catch {
                    throw JSONRPCFailure(error.code, "batch element \(index): \(error.message)")
                }
            }
            return .batch(messages)
        }
        return .single(try JSONRPCMessage(value))
    }
}

/// The standard and MCP error codes toolgate answers with.
public enum JSONRPCErrorCode: Int, Sendable {
    case parseError = -32700
    case invalidRequest = -32600
    case methodNotFound = -32601
    case invalidParams = -32602
    case internalError = -32603
    /// Per-request era: an `Mcp-*` header disagrees with the body.
    case headerMismatch = -32020
    /// MCP's "Resource not found" (`resources/read`).
    case resourceNotFound = -32002
}

public struct JSONRPCFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: JSONRPCErrorCode
    public let message: String

    public init(_ code: JSONRPCErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
