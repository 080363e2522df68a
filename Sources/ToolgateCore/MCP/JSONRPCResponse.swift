/// Builds the JSON-RPC answers toolgate writes itself.
public enum JSONRPCResponse {
    public static func error(id: JSONValue?, code: JSONRPCErrorCode, message: String) -> JSONValue {
        [
            "jsonrpc": "2.0",
            "id": id ?? .null,
            "error": ["code": .number(JSONNumber(code.rawValue)), "message": .string(message)],
        ]
    }

    /// An error with a `data` member.
    public static func error(id: JSONValue?, code: JSONRPCErrorCode, message: String, data: JSONValue) -> JSONValue {
        [
            "jsonrpc": "2.0",
            "id": id ?? .null,
            "error": ["code": .number(JSONNumber(code.rawValue)), "message": .string(message), "data": data],
        ]
    }

    public static func result(id: JSONValue, _ result: JSONValue) -> JSONValue {
        ["jsonrpc": "2.0", "id": id, "result": result]
    }
}
